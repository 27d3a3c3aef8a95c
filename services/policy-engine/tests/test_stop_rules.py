"""Stop on payment, void, write-off and credit; partial payments; no dunning without a due date or balance."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from dunning_events.events import Allocation, CreditNoteApplied, InvoiceVoided

from .conftest import EngineHarness, customer, invoice, payment


async def test_a_payment_settling_the_invoice_cancels_its_pending_step_at_once(engine: EngineHarness) -> None:
    await engine.publish(customer(), invoice("INV-1", due=engine.today + timedelta(days=10)))
    await engine.advance(days=2)
    await engine.publish(payment("INV-1", "1000.00", "0.00"))
    await engine.quiet()

    entries = await engine.timeline("INV-1")
    assert [e["kind"] for e in entries] == ["scheduled", "cancelled"]
    assert entries[-1]["reason"] == "cancelled: the invoice was paid"
    cancelled = await engine.cancelled()
    assert [(c.invoice_ids, c.reason) for c in cancelled] == [(["INV-1"], "cancelled: the invoice was paid")]
    assert cancelled[0].step_id == entries[-1]["detail"]["step_id"]
    assert (await engine.state("INV-1"))["next_at"] is None

    await engine.advance(days=60)
    assert await engine.steps_due() == []


async def test_a_partial_payment_keeps_dunning_going_with_the_new_balance(engine: EngineHarness) -> None:
    await engine.publish(customer(), invoice("INV-1", due=engine.today + timedelta(days=3), amount="1000.00"))
    await engine.quiet()  # pre-due reminder goes out now, for 1000.00
    await engine.publish(payment("INV-1", "400.00", "600.00"))
    await engine.next_moment("INV-1")

    steps = await engine.steps_due()
    assert [(s.step_name, str(s.amount_due)) for s in steps[:2]] == [
        ("pre_due_reminder", "1000.00"),
        ("due_date_notice", "600.00"),
    ]
    assert "cancelled" not in await engine.kinds("INV-1")


async def test_a_step_sent_moments_before_the_payment_is_recalled(engine: EngineHarness) -> None:
    await engine.publish(customer(), invoice("INV-1", due=engine.today + timedelta(days=3)))
    await engine.quiet()
    sent = (await engine.steps_due())[0]
    await engine.publish(payment("INV-1", "1000.00", "0.00"))
    await engine.quiet()
    cancelled = await engine.cancelled()
    # The pending step (due-date notice) and the one the notifier may still hold (pre-due reminder).
    assert sent.step_id in {c.step_id for c in cancelled}
    assert len(cancelled) == 2
    assert (await engine.timeline("INV-1"))[-1]["detail"]["recalled_step_id"] == sent.step_id


async def test_void_write_off_and_credit_to_zero_stop_dunning_with_their_reasons(engine: EngineHarness) -> None:
    due = engine.today + timedelta(days=10)
    await engine.publish(customer(), invoice("V", due=due), invoice("W", due=due), invoice("K", due=due))
    await engine.quiet()
    void = invoice("V", due=due).model_dump()
    written_off = invoice("W", due=due).model_dump()
    await engine.publish(
        InvoiceVoided(**{**void, "status": "void", "balance": Decimal(0)}),
        InvoiceVoided(**{**written_off, "status": "written_off", "balance": Decimal(0)}),
        CreditNoteApplied(
            customer_id="C-1", credit_note_id="CN-1", currency="EUR", total=Decimal("1000.00"), issued_on=date(2026, 3, 2),
            allocations=[Allocation(invoice_id="K", amount=Decimal("1000.00"), invoice_balance_after=Decimal(0),
                                    invoice_status_after="paid")],
        ),
    )  # fmt: skip
    await engine.advance(days=30)
    assert await engine.steps_due() == []
    reasons = {i: (await engine.timeline(i))[-1]["reason"] for i in ("V", "W", "K")}
    assert reasons == {
        "V": "cancelled: the invoice was voided",
        "W": "cancelled: the invoice was written off",
        "K": "cancelled: the invoice was credited to zero",
    }
    assert len(await engine.cancelled()) == 3


async def test_no_due_date_zero_balance_or_below_the_minimum_means_no_dunning_with_the_reason(
    engine: EngineHarness,
) -> None:
    async with engine.api("acme-admin-key") as admin:
        r = await admin.get("/v1/policies/default")
        doc = {k: v for k, v in r.json().items() if k != "version"}
        r = await admin.put("/v1/policies/default", json={**doc, "minimum_balance": {"EUR": "10.00"}})
        assert r.status_code == 200, r.text
    await engine.publish(
        customer(),
        invoice("NO-DUE", due=None),
        invoice("ZERO", due=engine.today, amount="100.00", balance="0.00"),
        invoice("TINY", due=engine.today, amount="9.99"),
        invoice("PART", due=engine.today + timedelta(days=10), amount="100.00"),
    )
    await engine.quiet()
    await engine.publish(payment("PART", "95.00", "5.00"))
    await engine.advance(days=40)

    assert [s.invoices[0].invoice_id for s in await engine.steps_due()] == []
    reasons = {i: (await engine.timeline(i))[-1]["reason"] for i in ("NO-DUE", "ZERO", "TINY", "PART")}
    assert reasons["NO-DUE"] == "no dunning: the invoice has no due date"
    assert reasons["ZERO"] == "no dunning: the balance is zero"
    assert reasons["TINY"] == "no dunning: the balance 9.99 EUR is below the policy minimum 10.00 EUR"
    assert reasons["PART"] == "no dunning: the balance 5.00 EUR is below the policy minimum 10.00 EUR"
