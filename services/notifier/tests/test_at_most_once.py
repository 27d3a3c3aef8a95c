"""Invariant 2: no dunning step is delivered twice over one channel, whatever is redelivered, crashed or
restarted, and however many dispatcher replicas run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dunning_events.codec import encode
from dunning_kit.testing import RunningService, poll_until, wait_until_quiet
from notifier.adapters import orm
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes, StartNotifier


async def _statuses(svc: RunningService) -> list[str]:
    d = orm.deliveries.c
    async with svc.runtime.sessions() as session:
        return list((await session.execute(select(d.status).order_by(d.created_at))).scalars())


async def test_a_redelivered_step_event_sends_nothing_more(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    await feed.publish(feed.customer(), feed.invoice())
    [step] = await feed.publish(feed.step())
    await notifications.wait_for("notification.sent")
    # The same envelope again (broker redelivery) and a new envelope for the same step (a replayed producer).
    headers, value = encode(step)
    await feed.send_raw("dunning.steps.v1", value, b"acme:C-1", headers)
    await feed.publish(feed.step())
    await quiet()
    assert len(fakes.smtp.received) == 1
    assert await _statuses(notifier) == ["sent"]
    assert len(notifications.of_type("notification.sent")) == 1


class Crash(RuntimeError):
    """Stands for the process dying after the provider took the message, before the outcome was written."""


async def test_a_crash_between_provider_call_and_record_never_sends_twice(
    start_notifier: StartNotifier, feed: EventFeed, fakes: Fakes, broker: Any
) -> None:
    first = await start_notifier()
    crashed: list[int] = []

    async def crash(outcomes: list[Any]) -> None:
        crashed.append(len(outcomes))
        raise Crash("killed after the SMTP server accepted the message")

    first.runtime.objects.dispatcher.after_send_hook = crash
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step())
    await poll_until(lambda: _async_len(fakes.smtp.received), what="the email at the sink")
    # The sink has the message before the SMTP client has its answer: wait for the dispatcher to get it too.
    await poll_until(lambda: _async_len(crashed), what="the dispatcher to crash after the provider call")
    assert crashed == [1] and len(fakes.smtp.received) == 1
    assert await _statuses(first) == ["sending"], "the outcome was never recorded"
    await first.stop()

    # Restart: a fresh instance on the same database and broker, with the stuck-sweep set short.
    second = await start_notifier(sending_stuck_after_seconds=1)
    await feed.publish(feed.step())  # and the step arrives again for good measure
    final = await poll_until(lambda: _unknown(second), timeout=30, what="the stuck delivery marked unknown")
    await wait_until_quiet([second.runtime])
    assert len(fakes.smtp.received) == 1, "the message must not be sent a second time"
    assert final == ["unknown"]
    async with second.client() as api:
        [delivery] = (await api.get("/v1/deliveries")).json()["items"]
    assert "outcome unknown" in delivery["error"] and delivery["attempts"] == 1


async def _unknown(svc: RunningService) -> list[str] | None:
    statuses = await _statuses(svc)
    return statuses if statuses == ["unknown"] else None


async def _async_len(items: list[Any]) -> int:
    return len(items)


async def test_two_dispatcher_replicas_send_each_step_exactly_once(
    start_notifier: StartNotifier, feed: EventFeed, fakes: Fakes
) -> None:
    replicas = [await start_notifier(), await start_notifier(dispatch_batch_size=7)]
    customers = [f"C-{i}" for i in range(60)]
    await feed.publish(*[feed.customer(c, email=f"ap{i}@example.com") for i, c in enumerate(customers)])
    await feed.publish(*[feed.invoice(f"INV-{c}", customer_id=c, number=f"N-{c}") for c in customers])
    await feed.publish(
        *[feed.step(f"S-{c}", customer_id=c, invoices=[(f"INV-{c}", f"N-{c}", "10.00")]) for c in customers]
    )
    await poll_until(lambda: _async_len(fakes.smtp.received), what="emails")
    await wait_until_quiet([r.runtime for r in replicas], timeout=60)
    recipients = sorted(r for m in fakes.smtp.received for r in m.rcpt_tos)
    assert recipients == sorted(f"ap{i}@example.com" for i in range(60))
    assert await _statuses(replicas[0]) == ["sent"] * 60
