"""Replays never undo a payment: the notifier's ledger projection ignores a snapshot older than the one it applied."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select

from dunning_events.events import InvoiceUpdated, supersedes
from dunning_kit.db import make_engine
from dunning_kit.testing import RunningService
from notifier.adapters import orm
from notifier.adapters.ledger_projection import newer_than_applied
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes


async def test_a_stale_snapshot_replayed_after_the_payment_does_not_change_the_projection(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    await feed.publish(feed.customer(), feed.invoice().model_copy(update={"version": 1}))
    paid = feed.payment("INV-1", "4820.00", "0.00")
    allocation = paid.allocations[0].model_copy(update={"invoice_version_after": 3})
    await feed.publish(paid.model_copy(update={"allocations": [allocation]}))
    # v2 (open, the whole balance) was dead-lettered in notifier.ledger and is replayed after the payment (v3).
    stale = InvoiceUpdated(**{**feed.invoice().model_dump(), "version": 2})
    await feed.publish(stale)
    await quiet()

    async with notifier.runtime.sessions() as session:
        row = (await session.execute(select(orm.invoice_balances))).one()
    assert (row.status, row.balance_minor, row.ledger_version) == ("paid", 0, 3)

    await feed.publish(feed.step())
    [skipped] = await notifications.wait_for("notification.skipped")
    await quiet()
    assert "already settled" in (skipped.data.reason or "")
    assert fakes.smtp.received == [], "the paid invoice is not chased"

    newer = InvoiceUpdated(**{**feed.invoice().model_dump(), "version": 4})  # reopened at the source: it applies
    await feed.publish(newer)
    await quiet()
    async with notifier.runtime.sessions() as session:
        row = (await session.execute(select(orm.invoice_balances))).one()
    assert (row.status, row.balance_minor, row.ledger_version) == ("open", 482000, 4)


async def test_the_projections_sql_is_the_supersedes_rule(database_url: str) -> None:
    engine = make_engine(database_url, "notifier", pool_size=1)
    b = orm.invoice_balances
    try:
        async with engine.begin() as conn:
            for applied in (0, 1, 5):
                await conn.execute(delete(b))
                await conn.execute(
                    insert(b).values(tenant_id="t", invoice_id="i", customer_id="c", number="n", currency="EUR",
                                     balance_minor=0, status="open", ledger_version=applied)
                )  # fmt: skip
                for version in (0, 1, 4, 5, 6):
                    assert await conn.scalar(select(newer_than_applied(version)).select_from(b)) == supersedes(
                        version, applied
                    )
    finally:
        await engine.dispose()
