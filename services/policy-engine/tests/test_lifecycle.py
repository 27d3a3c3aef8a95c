"""The default policy end to end on the real broker and PostgreSQL, with the simulated clock."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import holidays

from dunning_events.events import NotificationSent

from .conftest import EngineHarness, customer, invoice

BERLIN = ZoneInfo("Europe/Berlin")


async def test_a_120_day_lifecycle_sends_every_default_step_once_in_local_business_hours_then_hands_off(
    engine: EngineHarness,
) -> None:
    await engine.publish(customer("C-1", sms=True, voice=True), invoice("INV-1", due=engine.today + timedelta(days=6)))
    await engine.next_moment("INV-1")
    (first,) = await engine.steps_due()
    # The notifier reports the pre-due reminder sent: a reminder has reached the debtor before any hand-off.
    await engine.publish(NotificationSent(customer_id="C-1", delivery_id="D-1", step_id=first.step_id,
                                          channel="email", invoice_ids=["INV-1"]))  # fmt: skip
    await engine.run_until_idle("INV-1")

    steps = await engine.steps_due()
    assert [s.step_name for s in steps] == [
        "pre_due_reminder", "due_date_notice", "follow_up_1", "follow_up_2", "follow_up_3", "firm_reminder_1",
        "firm_reminder_2", "sms_escalation", "call_escalation", "final_notice", "collections_hand_off",
    ]  # fmt: skip
    assert len({s.step_id for s in steps}) == len(steps)
    de_holidays = holidays.country_holidays("DE", years=2026)
    for s in steps:
        local = s.scheduled_for.astimezone(BERLIN)
        assert 8 <= local.hour < 21 and local.weekday() < 5 and local.date() not in de_holidays, (s.step_name, local)
        assert not s.late
    by_name = {s.step_name: s for s in steps}
    assert by_name["sms_escalation"].channels == ["sms", "email"]
    assert by_name["call_escalation"].channels == ["voice", "task"]
    assert by_name["call_escalation"].channel_mode == "fallback"
    assert by_name["final_notice"].channels == ["letter", "email"]
    assert by_name["collections_hand_off"].actions == ["hand_off_to_collections"]
    assert by_name["follow_up_2"].invoices[0].days_overdue == 15  # due Sunday the 8th, sent Monday the 23rd

    state = await engine.state("INV-1")
    assert (state["status"], state["closed_reason"], state["next_at"]) == ("closed", "handed off to collections", None)
    assert state["closure"] == "handed_off"
    kinds = await engine.kinds("INV-1")
    assert kinds.count("sent") == 11 and kinds.count("scheduled") == 11 and kinds[-1] == "escalated"


async def test_invoices_at_the_same_step_are_one_message_per_customer_and_currency(engine: EngineHarness) -> None:
    # The pre-due reminder (5 days before) is tomorrow: all four invoices are in the engine before any step is due
    # (with its day already come, a batch boundary between A and B under load let A's reminder go out alone).
    due = engine.today + timedelta(days=6)
    await engine.publish(
        customer("C-1"), customer("C-2"),
        invoice("A", "C-1", due=due, amount="100.00"), invoice("B", "C-1", due=due, amount="250.50"),
        invoice("C", "C-1", due=due, amount="70.00", currency="USD"), invoice("D", "C-2", due=due),
    )  # fmt: skip
    await engine.quiet()
    assert await engine.steps_due() == []
    await engine.advance(days=1, hours=6)  # tomorrow afternoon: the pre-due reminder's day has come

    steps = await engine.steps_due()
    assert {s.step_name for s in steps} == {"pre_due_reminder"}
    got = sorted((s.customer_id, s.currency, str(s.amount_due), [i.invoice_id for i in s.invoices]) for s in steps)
    assert got == [
        ("C-1", "EUR", "350.50", ["A", "B"]),
        ("C-1", "USD", "70.00", ["C"]),
        ("C-2", "EUR", "1000.00", ["D"]),
    ]
    # Both invoices' timelines point at the one message.
    a = [e for e in await engine.timeline("A") if e["kind"] == "sent"]
    b = [e for e in await engine.timeline("B") if e["kind"] == "sent"]
    assert a[0]["detail"]["step_id"] == b[0]["detail"]["step_id"] != None  # noqa: E711
