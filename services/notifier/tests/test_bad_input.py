"""Bad input: an unknown template, no address on the channel, an undeliverable address - the delivery fails
with a clear reason (record + event), falls back only when the step says `fallback`, and the consumer goes on.
A poison event is dead-lettered."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dunning_events.events import PostalAddress
from dunning_events.topics import dead_letter_topic
from dunning_kit.testing import RunningService
from notifier.adapters import orm
from notifier.testing import EventFeed, TopicReader, read_topic

from .conftest import Fakes


async def _rows(svc: RunningService) -> list[tuple[str, str, str, str | None]]:
    d = orm.deliveries.c
    async with svc.runtime.sessions() as session:
        result = await session.execute(
            # created_at ties within one step (its channels are inserted together): the channel breaks them.
            select(d.step_id, d.channel, d.status, d.error).order_by(d.step_id, d.created_at, d.channel)
        )
    return [tuple(r) for r in result.all()]  # type: ignore[misc]


async def test_unknown_template_and_missing_address_fail_clearly_and_the_consumer_goes_on(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, broker: Any, quiet: Any
) -> None:
    await feed.publish(
        feed.customer("C-1"), feed.invoice("INV-1"),
        feed.customer("C-2", email=None), feed.invoice("INV-2", customer_id="C-2"),
        feed.customer("C-3", email="not-an-address"), feed.invoice("INV-3", customer_id="C-3"),
    )  # fmt: skip
    await feed.send_raw("dunning.steps.v1", b'{"type": "dunning.step.due", "oops": ', b"acme:C-1")
    await feed.publish(
        feed.step("S-1", template_id="no_such_template"),
        feed.step("S-2", customer_id="C-2", invoices=[("INV-2", "2026-0042", "4820.00")]),
        feed.step("S-3", customer_id="C-3", invoices=[("INV-3", "2026-0042", "4820.00")]),
        feed.step("S-4", template_id="gentle_follow_up"),
    )
    failed = await notifications.wait_for("notification.failed", count=3)
    await notifications.wait_for("notification.sent")
    await quiet()
    reasons = {e.data.step_id: e.data.reason for e in failed}
    assert reasons == {
        "S-1": "unknown template 'no_such_template'",
        "S-2": "the customer has no email address on record",
        "S-3": "undeliverable: 'not-an-address' is not a valid email address",
    }
    assert await _rows(notifier) == [
        ("S-1", "email", "failed", "unknown template 'no_such_template'"),
        ("S-2", "email", "failed", "the customer has no email address on record"),
        ("S-3", "email", "failed", "undeliverable: 'not-an-address' is not a valid email address"),
        ("S-4", "email", "sent", None),
    ]
    assert len(fakes.smtp.received) == 1
    dlq = await read_topic(broker.bootstrap_servers, dead_letter_topic("notifier.steps"))
    try:
        [poison] = await _wait_raw(dlq)
    finally:
        await dlq.stop()
    assert poison == 1


async def _wait_raw(reader: TopicReader) -> list[int]:
    from dunning_kit.testing import poll_until

    async def got() -> list[int] | None:
        count = await reader.consumer.end_offsets(list(reader.consumer.assignment()))
        total = sum(count.values())
        return [total] if total else None

    return await poll_until(got, what="the poison step on the dead-letter topic")


async def test_fallback_moves_to_the_next_channel_only_when_the_step_says_so(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    postal = PostalAddress(lines=["Hauptstraße 1"], postal_code="10115", city="Berlin", country="DE")
    await feed.publish(
        feed.customer(email=None, postal=postal, phone="+4915123456789", consent={"sms": True}), feed.invoice()
    )
    # fallback: email has no address -> the letter goes out instead.
    await feed.publish(
        feed.step("S-fb", channels=["email", "letter", "sms"], channel_mode="fallback", template_id="final_notice")
    )
    await notifications.wait_for("notification.sent")
    # all: email fails, SMS is sent anyway (its own record), no letter is added.
    await feed.publish(feed.step("S-all", channels=["email", "sms"], template_id="escalation_sms", tone="urgent"))
    await notifications.wait_for("notification.sent", count=2)
    await notifications.wait_for("notification.delivered")  # the fake's signed status callback
    await quiet()
    rows = await _rows(notifier)
    assert rows == [
        ("S-all", "email", "failed", "the customer has no email address on record"),
        ("S-all", "sms", "delivered", None),
        ("S-fb", "email", "failed", "the customer has no email address on record"),
        ("S-fb", "letter", "sent", None),
    ]
    pdfs = list(fakes.letters.glob("acme/*.pdf"))
    assert len(pdfs) == 1 and pdfs[0].read_bytes().startswith(b"%PDF")
    assert len(fakes.twilio.messages) == 1
