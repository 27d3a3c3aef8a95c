"""A step the notifier held outside the contact window is re-planned by the engine for the next allowed moment
(dunning.step.replanned), with both decisions on the timeline (real PostgreSQL and broker, simulated clock)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dunning_events.events import NotificationHeld

from .conftest import EngineHarness, customer, invoice, payment

BERLIN = ZoneInfo("Europe/Berlin")


def held(step_id: str, invoice_ids: list[str], at: datetime, until: datetime) -> NotificationHeld:
    return NotificationHeld(
        customer_id="C-1", delivery_id="D-1", step_id=step_id, channel="email", invoice_ids=invoice_ids,
        reason="reached at 21:30 local, after the contact window closed at 21:00", held_at=at, deliver_until=until,
    )  # fmt: skip


async def test_a_held_step_is_replanned_for_the_next_morning_and_the_timeline_says_both(
    engine: EngineHarness,
) -> None:
    await engine.publish(customer("C-1"), invoice("INV-1", due=engine.today + timedelta(days=3)))
    await engine.quiet()
    (step,) = await engine.steps_due()  # the pre-due reminder, Monday 10:00 Berlin
    assert step.deliver_until == datetime(2026, 3, 2, 21, tzinfo=BERLIN)
    assert step.deliver_from == datetime(2026, 3, 2, 8, tzinfo=BERLIN)

    engine.clock.set(datetime(2026, 3, 2, 21, 30, tzinfo=BERLIN))  # the notifier reached it too late
    await engine.publish(held(step.step_id, ["INV-1"], engine.clock.now(), step.deliver_until))  # type: ignore[arg-type]
    await engine.quiet()

    (replanned,) = await engine.events(type_="dunning.step.replanned")
    assert replanned.data.step_id == step.step_id and replanned.data.invoice_ids == ["INV-1"]
    assert replanned.data.deliver_from == datetime(2026, 3, 3, 8, tzinfo=BERLIN)  # Tuesday, 08:00 local
    assert replanned.data.deliver_until == datetime(2026, 3, 3, 21, tzinfo=BERLIN)
    assert replanned.causation_id is not None  # caused by the notifier's event
    timeline = await engine.timeline("INV-1")
    hold, plan = timeline[-2], timeline[-1]
    assert hold["kind"] == "held" and hold["step"] == "pre_due_reminder"
    assert hold["reason"] == (
        "pre_due_reminder held by the notifier (email): reached at 21:30 local, after the contact window closed "
        "at 21:00"
    )
    assert plan["kind"] == "scheduled" and plan["step"] == "pre_due_reminder"
    assert plan["reason"].startswith("pre_due_reminder re-planned for 2026-03-03T07:00:00+00:00")
    assert "08:00-21:00 local, business days" in plan["reason"]
    assert len(await engine.steps_due()) == 1  # re-planned, not decided again: still one step.due


async def test_a_held_step_whose_invoices_were_paid_meanwhile_is_cancelled_not_replanned(
    engine: EngineHarness,
) -> None:
    await engine.publish(customer("C-1"), invoice("INV-1", due=engine.today + timedelta(days=3)))
    await engine.quiet()
    (step,) = await engine.steps_due()
    await engine.publish(payment("INV-1", "1000.00", "0.00"))
    await engine.quiet()
    await engine.publish(held(step.step_id, ["INV-1"], engine.clock.now(), step.deliver_until))  # type: ignore[arg-type]
    await engine.quiet()

    assert await engine.events(type_="dunning.step.replanned") == []
    cancels = [c for c in await engine.cancelled() if c.step_id == step.step_id]
    assert any(c.reason == "held step no longer needed: dunning stopped on its invoices" for c in cancels)
