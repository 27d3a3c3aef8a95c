"""Replays never undo a payment: a ledger snapshot older than what a case applied changes nothing."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from dunning_events.events import Allocation, DisputeOpened, FieldChange, InvoiceUpdated, PaymentApplied

from .conftest import EngineHarness, customer, invoice


def paid_in_full(version_after: int) -> PaymentApplied:
    return PaymentApplied(
        customer_id="C-1", payment_id="PAY-1", currency="EUR", amount=Decimal("1000.00"), received_on=date(2026, 3, 2),
        allocations=[Allocation(invoice_id="INV-1", amount=Decimal("1000.00"), invoice_balance_after=Decimal(0),
                                invoice_status_after="paid", invoice_version_after=version_after)],
        unapplied=Decimal(0),
    )  # fmt: skip


def updated(due: date, version: int, balance: str = "1000.00") -> InvoiceUpdated:
    snapshot = invoice("INV-1", due=due, balance=balance).model_dump()
    return InvoiceUpdated(
        **{**snapshot, "version": version, "changes": [FieldChange(field="due_date", old=None, new=str(due))]}
    )


async def test_a_stale_snapshot_replayed_after_the_payment_does_not_reopen_the_paid_case_a_newer_one_does(
    engine: EngineHarness,
) -> None:
    due = engine.today + timedelta(days=10)
    # v2 (a due date change) failed in this group and went to its dead-letter topic; v3 (the payment) applied.
    await engine.publish(customer(), invoice("INV-1", due=due).model_copy(update={"version": 1}))
    await engine.publish(paid_in_full(version_after=3))
    await engine.quiet()
    before = await engine.timeline("INV-1")
    assert before[-1]["reason"] == "cancelled: the invoice was paid"

    await engine.publish(updated(due + timedelta(days=5), version=2))  # the replayed dead letter
    await engine.publish(DisputeOpened(customer_id="C-1", invoice_id="INV-1", reason="late", invoice_version=2))
    await engine.quiet()
    state = await engine.state("INV-1")
    assert (state["status"], state["closed_reason"]) == ("closed", "cancelled: the invoice was paid")
    assert state["closure"] == "paid"  # the typed reason the reopening rule reads (domain.closure)
    assert await engine.timeline("INV-1") == before, "nothing decided on an older snapshot"
    await engine.advance(days=60)
    assert await engine.steps_due() == [], "no reminder for the paid invoice"

    # A newer fact still applies: the payment bounced at the source, the invoice is open again at version 4.
    await engine.publish(updated(due, version=4))
    await engine.quiet()
    state = await engine.state("INV-1")
    assert state["status"] == "open" and state["next_step"] is not None
    assert (state["closure"], state["closed_reason"]) == (None, None)
