"""The last look before sending: what the step's invoices owe *now*, per the ledger projection (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dunning_events.money import from_minor


@dataclass(frozen=True)
class ProjectedInvoice:
    balance_minor: int
    status: str


@dataclass(frozen=True)
class OpenInvoice:
    invoice_id: str
    number: str
    total: Decimal
    balance: Decimal  # current balance (may be lower than when the step was decided)
    step_balance: Decimal  # balance the policy engine saw
    due_date: str | None
    days_overdue: int


@dataclass(frozen=True)
class LastLook:
    open_invoices: list[OpenInvoice]
    settled_ids: list[str]

    @property
    def all_settled(self) -> bool:
        return not self.open_invoices

    @property
    def total(self) -> Decimal:
        return sum((i.balance for i in self.open_invoices), Decimal(0))

    def skip_reason(self) -> str:
        return f"every invoice of the step is already settled ({', '.join(self.settled_ids)})"


def last_look(
    step_invoices: Sequence[Mapping[str, Any]], projection: Mapping[str, ProjectedInvoice], currency: str
) -> LastLook:
    """Drop invoices that were paid, voided, written off or credited to zero since the step was decided;
    render the rest with their current balance. An invoice the projection has never seen keeps the step's
    figures (the ledger catch-up check ran before, so the projection holds every published ledger event)."""
    open_invoices: list[OpenInvoice] = []
    settled: list[str] = []
    for inv in step_invoices:
        step_balance = Decimal(str(inv["balance"]))
        now = projection.get(inv["invoice_id"])
        if now is None:
            balance = step_balance
        elif now.status != "open" or now.balance_minor <= 0:
            settled.append(inv["invoice_id"])
            continue
        else:
            balance = from_minor(now.balance_minor, currency)
        if balance <= 0:
            settled.append(inv["invoice_id"])
            continue
        open_invoices.append(
            OpenInvoice(
                invoice_id=inv["invoice_id"],
                number=inv["number"],
                total=Decimal(str(inv.get("total", balance))),
                balance=balance,
                step_balance=step_balance,
                due_date=inv.get("due_date"),
                days_overdue=int(inv.get("days_overdue", 0)),
            )
        )
    return LastLook(open_invoices, settled)
