"""Invariant 1: no reminder for an invoice paid before the send, as far as ledger events published before
the send say - even when the notifier's own ledger consumer has not applied them yet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from dunning_events import topics
from dunning_events.consumer import ConsumedEvent
from dunning_events.envelope import new_event
from dunning_kit.testing import RunningService, poll_until
from notifier.adapters import orm
from notifier.service_layer.dispatcher import HELD
from notifier.service_layer.projections import record_positions
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes

NOW = datetime(2026, 3, 10, tzinfo=UTC)


@pytest.fixture
def notifier_overrides() -> dict[str, Any]:
    return {"ledger_catch_up_wait_seconds": 0.3}


async def test_a_payment_on_the_broker_but_not_yet_projected_stops_the_send(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    await feed.publish(feed.customer(), feed.invoice())
    await quiet()
    ledger = next(c for c in notifier.runtime.consumers if c.group == "notifier.ledger")
    await ledger.stop()  # the projection falls behind: the payment below is on the broker, not applied

    held_before = HELD._value.get()
    await feed.publish(feed.payment("INV-1", "4820.00", "0.00"))
    await feed.publish(feed.step())

    async def held() -> bool:
        return HELD._value.get() > held_before

    await poll_until(held, what="the dispatcher holding the send")
    assert fakes.smtp.received == []

    ledger.start()
    [skipped] = await notifications.wait_for("notification.skipped")
    await quiet()
    assert fakes.smtp.received == []
    assert skipped.data.reason == "every invoice of the step is already settled (INV-1)"
    assert notifications.of_type("notification.sent") == []


async def test_a_voided_invoice_is_skipped_and_a_partly_paid_one_shows_what_is_left(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    await feed.publish(
        feed.customer(locale="en-US"),
        feed.invoice("INV-1", number="A-1", total="4820.00", currency="USD"),
        feed.invoice("INV-2", number="A-2", total="300.00", currency="USD"),
    )
    await feed.publish(feed.payment("INV-1", "820.00", "4000.00", currency="USD"))
    voided = feed.invoice("INV-2", number="A-2", total="300.00", currency="USD")
    from dunning_events.events import InvoiceVoided

    await feed.publish(InvoiceVoided(**{**voided.model_dump(), "status": "void", "balance": "300.00"}))
    await feed.publish(feed.step(invoices=[("INV-1", "A-1", "4820.00"), ("INV-2", "A-2", "300.00")], currency="USD"))
    await notifications.wait_for("notification.sent")
    await quiet()
    [mail] = fakes.smtp.received
    text = mail.message.get_body(("plain",)).get_content()
    assert "Invoice A-1" in text and "$4,000.00 (of $4,820.00, part paid)" in text
    assert "A-2" not in text, "the voided invoice is not chased"
    assert "Total due: $4,000.00" in text

    # A step whose every invoice is settled by then: skipped with the reason, nothing sent.
    await feed.publish(feed.payment("INV-1", "4000.00", "0.00", currency="USD", payment_id="PAY-2"))
    await feed.publish(feed.step("S-2", invoices=[("INV-1", "A-1", "4000.00")], currency="USD"))
    [skipped] = await notifications.wait_for("notification.skipped")
    assert skipped.data.step_id == "S-2" and "already settled" in skipped.data.reason
    await quiet()
    assert len(fakes.smtp.received) == 1


async def test_a_settlement_applied_ahead_by_the_priority_lane_is_not_a_position_the_projection_reached(
    notifier: RunningService, feed: EventFeed
) -> None:
    # The lane applies a payment far ahead in its partition while the records before it wait for the group: the
    # watermark must not take the payment's offset as "everything before it applied".
    payment = new_event(feed.payment("INV-1", "4820.00", "0.00"), tenant_id="acme", source="test", occurred_at=NOW)
    async with notifier.runtime.sessions() as session, session.begin():
        await record_positions(session, [ConsumedEvent(payment, topics.LEDGER, 3, 500, ahead=True)])
    assert await positions(notifier) == {}
    async with notifier.runtime.sessions() as session, session.begin():
        await record_positions(session, [ConsumedEvent(payment, topics.LEDGER, 3, 7)])
    assert await positions(notifier) == {3: 8}


async def positions(notifier: RunningService) -> dict[int, int]:
    p = orm.ledger_positions.c
    async with notifier.runtime.sessions() as session:
        rows = (await session.execute(select(p.partition, p.next_offset).where(p.topic == topics.LEDGER))).all()
    return {int(r[0]): int(r[1]) for r in rows}
