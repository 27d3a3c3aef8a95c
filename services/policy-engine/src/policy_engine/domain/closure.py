"""Why a dunning case was closed, typed, and the rule for which later ledger facts bring a closed case back.

The timeline and the API show a sentence (`Case.closed_reason`); rules read only the `ClosureReason`, never the
sentence, so rewording a timeline text cannot change what the engine does.
"""

from __future__ import annotations

from enum import StrEnum

from dunning_events.events import InvoiceStatus


class ClosureReason(StrEnum):
    """Stored in `cases.closure` (a CHECK constraint admits exactly these values)."""

    PAID = "paid"
    CREDITED = "credited"  # credit notes brought the balance to zero
    VOIDED = "voided"
    WRITTEN_OFF = "written_off"
    HANDED_OFF = "handed_off"  # the last step handed the debt to collections
    ERASED = "erased"  # customer.erased: the one stop that is never undone


class Reopening(StrEnum):
    """The ledger facts that may bring a closed invoice back into dunning."""

    INVOICE_OPEN_AGAIN = "invoice.updated"  # a snapshot says the invoice is open with a balance again
    PAYMENT_REVERSED = "payment.reversed"  # an allocation was taken back and the invoice is open again


# A settlement a later fact undid reopens the case; a void, a write-off, a hand-off or an erasure never does.
# A snapshot reopens only a paid case (a credit note is taken back by a reversal, not by a snapshot).
_REOPENED_BY: dict[Reopening, frozenset[ClosureReason]] = {
    Reopening.INVOICE_OPEN_AGAIN: frozenset({ClosureReason.PAID}),
    Reopening.PAYMENT_REVERSED: frozenset({ClosureReason.PAID, ClosureReason.CREDITED}),
}


def reopens(closure: ClosureReason | None, by: Reopening) -> bool:
    """Whether the fact `by` brings back a case closed for `closure` (None: the case is not closed)."""
    return closure is not None and closure in _REOPENED_BY[by]


def settled_by(
    status_after: InvoiceStatus, balance_after_minor: int, *, credit_note: bool = False
) -> ClosureReason | None:
    """The closure a ledger fact about the invoice implies (a snapshot, an allocation), or None if dunning goes on."""
    if status_after == "void":
        return ClosureReason.VOIDED
    if status_after == "written_off":
        return ClosureReason.WRITTEN_OFF
    if status_after == "paid" or balance_after_minor <= 0:
        return ClosureReason.CREDITED if credit_note else ClosureReason.PAID
    return None


def voided_as(status: InvoiceStatus) -> ClosureReason:
    """invoice.voided carries the status it left the invoice in: written off, or (by default) void."""
    return {"written_off": ClosureReason.WRITTEN_OFF, "paid": ClosureReason.PAID}.get(status, ClosureReason.VOIDED)
