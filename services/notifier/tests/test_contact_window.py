"""Quiet hours are enforced at the send (issue 11, point 1): a delivery reached outside its step's contact
window (`deliver_from`, `deliver_until` on dunning.step.due) is held - at the claim, and again at the send
gate right before the provider call - and waits for dunning.step.replanned; then it is sent once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import RunningService, poll_until
from notifier.adapters import orm
from notifier.domain.contact_window import outside_window
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes

BERLIN = ZoneInfo("Europe/Berlin")


async def _deliveries(svc: RunningService) -> list[dict[str, Any]]:
    d = orm.deliveries.c
    async with svc.runtime.sessions() as session:
        rows = (await session.execute(select(orm.deliveries).order_by(d.created_at))).mappings().all()
    return [dict(r) for r in rows]


async def _status_is(svc: RunningService, status: str) -> list[dict[str, Any]]:
    rows = await _deliveries(svc)
    return rows if rows and all(r["status"] == status for r in rows) else []


@asynccontextmanager
async def smtp_slots_taken(svc: RunningService) -> AsyncIterator[None]:
    """Every SMTP slot of the send gate held by the test: claimed deliveries wait at the gate."""
    slot = svc.runtime.objects.dispatcher.gate.slot("smtp")
    taken = svc.runtime.objects.settings.smtp_pool_size
    for _ in range(taken):
        await slot.acquire()
    try:
        yield
    finally:
        for _ in range(taken):
            slot.release()


def test_the_window_is_judged_in_the_debtors_local_time_with_an_exclusive_end() -> None:
    step = {"deliver_from": "2026-03-02T07:00:00Z", "deliver_until": "2026-03-02T20:00:00Z"}  # 08:00-21:00 Berlin
    assert outside_window(step, datetime(2026, 3, 2, 19, 59, 59, tzinfo=UTC), BERLIN) is None
    closed = outside_window(step, datetime(2026, 3, 2, 20, 30, tzinfo=UTC), BERLIN)
    assert closed is not None and closed.reason == (
        "reached at 21:30 local, after the contact window closed at 21:00 (deliver_until 2026-03-02T20:00:00+00:00)"
    )
    assert outside_window(step, datetime(2026, 3, 2, 20, 0, tzinfo=UTC), BERLIN) is not None, "the end is exclusive"
    early = outside_window(step, datetime(2026, 3, 2, 6, 10, tzinfo=UTC), BERLIN)
    assert early is not None and "reached at 07:10 local, before the contact window opens at 08:00" in early.reason
    assert outside_window({}, datetime(2026, 3, 2, 23, 0, tzinfo=UTC), BERLIN) is None, "no window, no hold"


async def test_a_step_reached_after_its_window_closed_is_held_then_replanned_and_sent_once(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    clock: SimulatedClock = feed.clock  # type: ignore[assignment]
    clock.set(datetime(2026, 3, 2, 20, 30, tzinfo=UTC))  # 21:30 in Berlin: a busy queue reached the step late
    await feed.publish(feed.customer(phone="+4915123456789", consent={"sms": True}), feed.invoice())
    window = (datetime(2026, 3, 2, 7, 0, tzinfo=UTC), datetime(2026, 3, 2, 20, 0, tzinfo=UTC))  # 08:00-21:00 local
    await feed.publish(
        feed.step(channels=["email", "sms"], channel_mode="fallback", deliver_from=window[0], deliver_until=window[1])
    )
    [held] = await notifications.wait_for("notification.held")
    assert held.data.reason == (
        "reached at 21:30 local, after the contact window closed at 21:00 (deliver_until 2026-03-02T20:00:00+00:00)"
    )
    assert (held.data.held_at, held.data.deliver_from, held.data.deliver_until) == (clock.now(), *window)
    assert held.data.channel == "email" and held.data.recipient == "a***@initech.example"
    assert held.data.invoice_ids == ["INV-1"]
    await quiet()
    [row] = await _deliveries(notifier)
    assert row["status"] == "held" and row["attempts"] == 0, "held is not a failed attempt"
    assert fakes.smtp.received == [] and fakes.twilio.messages == [], "no provider, and no fallback to SMS"
    assert notifications.of_type("notification.failed") == []

    # The policy engine's answer: the next allowed moment, 08:00 tomorrow in Berlin.
    tomorrow = (window[0] + timedelta(days=1), window[1] + timedelta(days=1))
    await feed.publish(feed.replanned("S-1", ["INV-1"], *tomorrow))
    pending = await poll_until(lambda: _status_is(notifier, "pending"), what="the held delivery to be due again")
    assert pending[0]["id"] == row["id"] and pending[0]["next_attempt_at"] == tomorrow[0]
    assert pending[0]["step"]["deliver_until"] == "2026-03-03T20:00:00Z"
    await quiet()
    assert fakes.smtp.received == [], "not before the new window opens"

    clock.set(tomorrow[0] + timedelta(minutes=1))
    [sent] = await notifications.wait_for("notification.sent")
    await feed.publish(feed.replanned("S-1", ["INV-1"], *tomorrow))  # a second answer finds nothing held
    await quiet()
    assert sent.data.delivery_id == held.data.delivery_id, "the same delivery: caps count the step once"
    assert len(fakes.smtp.received) == 1 and fakes.twilio.messages == []
    [row] = await _deliveries(notifier)
    assert row["status"] == "sent" and row["attempts"] == 1 and row["sent_at"] == clock.now()


async def test_a_step_reached_before_its_window_opens_is_held(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    # 10:00 in Berlin; the window opens at 08:00 tomorrow.
    opens = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step(deliver_from=opens, deliver_until=opens + timedelta(hours=13)))
    [held] = await notifications.wait_for("notification.held")
    assert held.data.reason == (
        "reached at 2026-03-02 10:00 local, before the contact window opens at 2026-03-03 08:00 "
        "(deliver_from 2026-03-03T07:00:00+00:00)"
    )
    await quiet()
    assert [r["status"] for r in await _deliveries(notifier)] == ["held"]
    assert fakes.smtp.received == []


async def test_a_cancelled_held_step_is_cancelled_and_a_late_replan_changes_nothing(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    closed = feed.clock.now() - timedelta(minutes=5)
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step(deliver_from=closed - timedelta(hours=13), deliver_until=closed))
    await notifications.wait_for("notification.held")
    await feed.publish(feed.cancelled("S-1", ["INV-1"]))
    [row] = await poll_until(lambda: _status_is(notifier, "cancelled"), what="the held delivery cancelled")
    assert row["error"] == "step cancelled: paid"
    await feed.publish(feed.replanned("S-1", ["INV-1"], feed.clock.now(), feed.clock.now() + timedelta(hours=8)))
    await quiet()
    assert [r["status"] for r in await _deliveries(notifier)] == ["cancelled"]
    assert fakes.smtp.received == [] and notifications.of_type("notification.sent") == []


async def test_the_send_gate_holds_a_claimed_delivery_whose_window_closed_while_it_waited(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    clock: SimulatedClock = feed.clock  # type: ignore[assignment]
    until = clock.now() + timedelta(hours=1)
    await feed.publish(feed.customer(), feed.invoice())
    async with smtp_slots_taken(notifier):  # a slow provider: the claimed delivery waits for a connection
        await feed.publish(feed.step(deliver_from=clock.now() - timedelta(hours=2), deliver_until=until))
        await poll_until(lambda: _status_is(notifier, "claimed"), what="the delivery claimed and rendered")
        clock.set(until + timedelta(minutes=30))
    [held] = await notifications.wait_for("notification.held")
    assert held.data.reason.startswith("reached at 11:30 local, after the contact window closed at 11:00")
    await quiet()
    [row] = await _deliveries(notifier)
    assert row["status"] == "held" and row["attempts"] == 0
    assert fakes.smtp.received == [], "the provider was never called"
