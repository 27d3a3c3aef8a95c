"""A crash writes off only what was in flight (issue 11, point 5): a claimed delivery is rendered but not yet
handed to a provider, so whoever finds its lease expired sends it - once; only what passed the send gate
(`sending`) can end `unknown`. The process-level proof with SIGKILL is tests/faults/test_notifier_crash.py."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, text

from dunning_kit.testing import RunningService, poll_until, wait_until_quiet
from notifier.adapters import orm
from notifier.testing import EventFeed

from .conftest import Fakes, StartNotifier
from .test_contact_window import smtp_slots_taken

N = 5


async def _rows(svc: RunningService) -> list[dict[str, Any]]:
    async with svc.runtime.sessions() as session:
        return [dict(r) for r in (await session.execute(select(orm.deliveries))).mappings().all()]


async def _all(svc: RunningService, status: str) -> list[dict[str, Any]]:
    rows = await _rows(svc)
    return rows if len(rows) == N and all(r["status"] == status for r in rows) else []


async def _publish_steps(feed: EventFeed) -> None:
    customers = [f"C-{i}" for i in range(N)]
    await feed.publish(*[feed.customer(c, email=f"ap{i}@example.com") for i, c in enumerate(customers)])
    await feed.publish(*[feed.invoice(f"INV-{c}", customer_id=c, number=f"N-{c}") for c in customers])
    await feed.publish(
        *[feed.step(f"S-{c}", customer_id=c, invoices=[(f"INV-{c}", f"N-{c}", "10.00")]) for c in customers]
    )


def _recipients(fakes: Fakes) -> list[str]:
    return sorted(r for m in fakes.smtp.received for r in m.rcpt_tos)


async def test_claims_of_a_dispatcher_that_died_are_taken_over_and_sent_once(
    start_notifier: StartNotifier, feed: EventFeed, fakes: Fakes
) -> None:
    first = await start_notifier(dispatch_workers=1)
    async with smtp_slots_taken(first):
        await _publish_steps(feed)
        claimed = await poll_until(lambda: _all(first, "claimed"), what="the deliveries claimed and rendered")
        assert all(r["attempts"] == 0 for r in claimed), "a claim is not an attempt"
        # The first dispatcher "dies" holding its claims: they belong to a batch no one runs, lease expired.
        async with first.runtime.sessions() as session, session.begin():
            await session.execute(
                text(
                    "UPDATE deliveries SET claim_token = gen_random_uuid(), claimed_until = now() - interval '1 second' "
                    "WHERE status = 'claimed'"
                )
            )
        second = await start_notifier()
        await poll_until(lambda: _all(second, "sent"), what="the taken-over deliveries sent")
    # The first dispatcher wakes up with its stale batch: the gate admits none of it.
    await wait_until_quiet([first.runtime, second.runtime])
    assert _recipients(fakes) == sorted(f"ap{i}@example.com" for i in range(N)), "each sent exactly once"
    assert {r["attempts"] for r in await _rows(second)} == {1}


async def test_a_graceful_stop_hands_unsent_claims_back_and_a_restart_sends_them(
    start_notifier: StartNotifier, feed: EventFeed, fakes: Fakes
) -> None:
    first = await start_notifier(dispatch_workers=1)
    async with smtp_slots_taken(first):
        await _publish_steps(feed)
        await poll_until(lambda: _all(first, "claimed"), what="the deliveries claimed and rendered")
        stopping = asyncio.create_task(first.stop())  # SIGTERM: open calls finish, the rest goes back

        async def told_to_stop() -> bool:
            return first.runtime.objects.dispatcher._stopping

        await poll_until(told_to_stop, what="the dispatcher to stop admitting sends")
    await stopping
    released = await _all(first, "pending")
    assert released and all(r["claim_token"] is None and r["attempts"] == 0 for r in released)
    assert fakes.smtp.received == []

    second = await start_notifier()
    await poll_until(lambda: _all(second, "sent"), what="the released deliveries sent after the restart")
    await wait_until_quiet([second.runtime])
    assert _recipients(fakes) == sorted(f"ap{i}@example.com" for i in range(N))


async def test_a_cancel_reaches_a_claimed_delivery_before_the_gate_and_nothing_is_sent(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, quiet: Any
) -> None:
    async with smtp_slots_taken(notifier):
        await feed.publish(feed.customer(), feed.invoice())
        await feed.publish(feed.step())
        await poll_until(lambda: _one(notifier, "claimed"), what="the delivery claimed")
        await feed.publish(feed.cancelled("S-1", ["INV-1"]))
        await poll_until(lambda: _one(notifier, "cancelled"), what="the claimed delivery cancelled")
    await quiet()
    assert (await _one(notifier, "cancelled"))[0]["attempts"] == 0
    assert fakes.smtp.received == [], "the gate found it no longer claimed"


async def _one(svc: RunningService, status: str) -> list[dict[str, Any]]:
    rows = await _rows(svc)
    return rows if len(rows) == 1 and rows[0]["status"] == status else []
