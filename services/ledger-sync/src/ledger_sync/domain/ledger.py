"""Ledger rules, free of I/O, in exact integer minor units.

The one invariant everything here protects, for every invoice:
    balance = total - Σ payment allocations - Σ credit allocations - cancelled
`cancelled` is what a void (the whole total) or a write-off (the open balance) took off the books.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import NamedTuple

CLOSED = ("void", "written_off")


class LedgerRuleViolation(ValueError):
    """A write that would break the ledger; `field` names what is wrong, `reason` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class InvoiceState:
    invoice_id: str
    customer_id: str
    number: str
    currency: str
    total: int
    balance: int
    issue_date: date
    due_date: date | None = None
    terms: str | None = None
    status: str = "open"
    cancelled: int = 0
    disputed: bool = False
    dispute_reason: str | None = None
    source: str = "api"
    erp_updated_at: datetime | None = None
    # One higher with every change that emits an event about the invoice (terms, balance, status, dispute): its
    # events carry it, so a consumer can tell an older snapshot (a replayed dead letter) from a newer one.
    version: int = 1

    @property
    def applied(self) -> int:
        """Paid plus credited: what the invariant says allocations and credits add up to."""
        return self.total - self.balance - self.cancelled


class InvoiceTerms(NamedTuple):
    """The fields of an invoice an upsert may set (balance and status follow from the ledger).

    A named tuple rather than a dataclass: a bulk import builds 100,000 of them, and a tuple is built
    in a fraction of a frozen dataclass's time (and pickles as plain values)."""

    invoice_id: str
    customer_id: str
    number: str
    currency: str
    total: int
    issue_date: date
    due_date: date | None
    terms: str | None


@dataclass(frozen=True)
class Change:
    field: str
    old: object
    new: object


def settle_status(balance: int, status: str) -> str:
    """Status that follows from the balance; a void stays void, a write-off stays closed while nothing is owed."""
    if status == "void":
        return "void"
    if status == "written_off" and balance == 0:
        return "written_off"
    return "paid" if balance == 0 else "open"


_TERM_FIELDS = ("customer_id", "number", "currency", "total", "issue_date", "due_date", "terms")


def plan_invoice_upsert(current: InvoiceState | None, new: InvoiceTerms) -> tuple[InvoiceState, list[Change]]:
    """The invoice after an upsert and what changed (empty: nothing to write, nothing to emit)."""
    if current is None:
        state = InvoiceState(
            invoice_id=new.invoice_id,
            customer_id=new.customer_id,
            number=new.number,
            currency=new.currency,
            total=new.total,
            balance=new.total,
            issue_date=new.issue_date,
            due_date=new.due_date,
            terms=new.terms,
            status=settle_status(new.total, "open"),
        )
        return state, []
    changes = [
        Change(f, getattr(current, f), getattr(new, f)) for f in _TERM_FIELDS if getattr(current, f) != getattr(new, f)
    ]
    if not changes:
        return current, []
    if current.status in CLOSED:
        raise LedgerRuleViolation(
            "status", f"invoice {current.invoice_id!r} is {current.status}; it can no longer change"
        )
    applied = current.applied
    if applied:
        if new.currency != current.currency:
            raise LedgerRuleViolation("currency", "cannot change once payments or credits are applied")
        if new.customer_id != current.customer_id:
            raise LedgerRuleViolation("customer_id", "cannot change once payments or credits are applied")
    if new.total < applied + current.cancelled:
        raise LedgerRuleViolation("total", "is below what is already paid or credited on this invoice")
    balance = new.total - applied - current.cancelled
    status = settle_status(balance, current.status)
    state = replace(
        current,
        customer_id=new.customer_id,
        number=new.number,
        currency=new.currency,
        total=new.total,
        issue_date=new.issue_date,
        due_date=new.due_date,
        terms=new.terms,
        balance=balance,
        status=status,
        version=current.version + 1,
    )
    if balance != current.balance:
        changes.append(Change("balance", current.balance, balance))
    if status != current.status:
        changes.append(Change("status", current.status, status))
    return state, changes


@dataclass(frozen=True)
class AllocationDelta:
    """A change in how much of one document (payment, credit note) sits on one invoice."""

    invoice_id: str
    delta: int  # > 0 applies more, < 0 gives back
    balance_after: int
    status_after: str
    version_after: int


@dataclass(frozen=True)
class AllocationPlan:
    deltas: list[AllocationDelta]
    unapplied: int
    invoices: dict[str, InvoiceState]  # the touched invoices after the plan

    @property
    def applied(self) -> list[AllocationDelta]:
        return [d for d in self.deltas if d.delta > 0]

    @property
    def given_back(self) -> list[AllocationDelta]:
        return [d for d in self.deltas if d.delta < 0]


def plan_allocations(
    *,
    document: str,
    currency: str,
    customer_id: str,
    amount: int,
    old: Mapping[str, int],
    new: Iterable[tuple[str, int]],
    invoices: Mapping[str, InvoiceState],
) -> AllocationPlan:
    """Move a document's allocations from `old` to `new`, checking each against the invoices' open balances.

    Give-backs are applied before new allocations so moving money between two invoices of the same
    document works; errors name the offending `allocations[i]` entry.
    """
    wanted: dict[str, int] = {}
    for i, (invoice_id, value) in enumerate(new):
        where = f"allocations[{i}]"
        if invoice_id in wanted:
            raise LedgerRuleViolation(f"{where}.invoice_id", f"invoice {invoice_id!r} is listed twice")
        if value <= 0:
            raise LedgerRuleViolation(f"{where}.amount", "must be positive")
        inv = invoices.get(invoice_id)
        if inv is None:
            raise LedgerRuleViolation(f"{where}.invoice_id", f"unknown invoice {invoice_id!r}")
        if inv.currency != currency:
            raise LedgerRuleViolation(
                f"{where}.invoice_id", f"currency mismatch: invoice is {inv.currency}, {document} is {currency}"
            )
        if inv.customer_id != customer_id:
            raise LedgerRuleViolation(f"{where}.invoice_id", f"invoice {invoice_id!r} belongs to another customer")
        wanted[invoice_id] = value
    total_allocated = sum(wanted.values())
    if total_allocated > amount:
        raise LedgerRuleViolation("allocations", f"allocating more than the {document} amount")

    touched = dict(invoices)
    deltas: list[AllocationDelta] = []
    order = {inv_id: i for i, inv_id in enumerate(wanted)}
    changes = {inv_id: wanted.get(inv_id, 0) - old.get(inv_id, 0) for inv_id in {*old, *wanted}}
    # Give-backs first, then new money in the order the caller listed it.
    for invoice_id in sorted((k for k, d in changes.items() if d < 0), key=str):
        inv = touched[invoice_id]
        balance = inv.balance - changes[invoice_id]
        if balance > inv.total - inv.cancelled:
            raise LedgerRuleViolation("allocations", f"giving back more than was applied to {invoice_id!r}")
        touched[invoice_id] = after = changed(inv, balance=balance, status=settle_status(balance, inv.status))
        deltas.append(AllocationDelta(invoice_id, changes[invoice_id], balance, after.status, after.version))
    for invoice_id in sorted((k for k, d in changes.items() if d > 0), key=order.__getitem__):
        where = f"allocations[{order[invoice_id]}]"
        inv = touched[invoice_id]
        if inv.status in CLOSED:
            raise LedgerRuleViolation(f"{where}.invoice_id", f"invoice {invoice_id!r} is {inv.status}")
        if changes[invoice_id] > inv.balance:
            raise LedgerRuleViolation(
                f"{where}.amount", f"exceeds the invoice's open balance of {inv.balance} minor units"
            )
        balance = inv.balance - changes[invoice_id]
        touched[invoice_id] = after = changed(inv, balance=balance, status=settle_status(balance, inv.status))
        deltas.append(AllocationDelta(invoice_id, changes[invoice_id], balance, after.status, after.version))
    return AllocationPlan(
        deltas=deltas,
        unapplied=amount - total_allocated,
        invoices={k: v for k, v in touched.items() if k in changes},
    )


def plan_close(inv: InvoiceState, status: str) -> InvoiceState:
    """Void (cancel the whole total; allocations must have been released) or write off the open balance."""
    if status not in CLOSED:
        raise ValueError(status)
    if inv.status == "void":
        raise LedgerRuleViolation("status", f"invoice {inv.invoice_id!r} is already void")
    if status == "void":
        if inv.applied:
            raise LedgerRuleViolation("status", "release the invoice's allocations before voiding it")
        return changed(inv, balance=0, cancelled=inv.total, status="void")
    if inv.status == "written_off":
        raise LedgerRuleViolation("status", f"invoice {inv.invoice_id!r} is already written off")
    return changed(inv, balance=0, cancelled=inv.cancelled + inv.balance, status="written_off")


def changed(inv: InvoiceState, **fields: object) -> InvoiceState:
    """The invoice after a change its events will report: the next version."""
    return replace(inv, version=inv.version + 1, **fields)  # type: ignore[arg-type]
