"""Ledger rules, free of I/O: allocations against open balances, in exact minor units."""

from __future__ import annotations

from dataclasses import dataclass


class LedgerRuleViolation(ValueError):
    """A write that would break the ledger; `field` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class OpenInvoice:
    invoice_id: str
    currency: str
    balance_minor: int
    status: str


@dataclass(frozen=True)
class AllocationResult:
    invoice_id: str
    amount_minor: int
    balance_after_minor: int
    status_after: str


def allocate(
    payment_currency: str,
    payment_minor: int,
    requested: list[tuple[str, int]],
    invoices: dict[str, OpenInvoice],
) -> tuple[list[AllocationResult], int]:
    """Apply requested (invoice_id, amount) allocations; return results and the unapplied remainder."""
    results: list[AllocationResult] = []
    allocated = 0
    for i, (invoice_id, amount) in enumerate(requested):
        where = f"allocations[{i}]"
        inv = invoices.get(invoice_id)
        if inv is None:
            raise LedgerRuleViolation(f"{where}.invoice_id", f"unknown invoice {invoice_id!r}")
        if inv.currency != payment_currency:
            raise LedgerRuleViolation(
                f"{where}.invoice_id", f"currency mismatch: invoice is {inv.currency}, payment is {payment_currency}"
            )
        if amount <= 0:
            raise LedgerRuleViolation(f"{where}.amount", "must be positive")
        if inv.status != "open":
            raise LedgerRuleViolation(f"{where}.invoice_id", f"invoice is {inv.status}, not open")
        if amount > inv.balance_minor:
            raise LedgerRuleViolation(f"{where}.amount", "exceeds the invoice's open balance")
        balance_after = inv.balance_minor - amount
        status_after = "paid" if balance_after == 0 else "open"
        invoices[invoice_id] = OpenInvoice(invoice_id, inv.currency, balance_after, status_after)
        results.append(AllocationResult(invoice_id, amount, balance_after, status_after))
        allocated += amount
    if allocated > payment_minor:
        raise LedgerRuleViolation("allocations", "allocated more than the payment amount")
    return results, payment_minor - allocated
