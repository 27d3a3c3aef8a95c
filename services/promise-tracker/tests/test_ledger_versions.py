"""Replays never undo a payment: the promise tracker's invoices ignore a ledger fact older than the one applied."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, insert, select

from dunning_events.events import InvoiceCreated, InvoiceUpdated, InvoiceVoided, supersedes
from dunning_kit.clock import SimulatedClock
from dunning_kit.db import make_engine
from dunning_kit.testing import RunningService
from promise_tracker.adapters import orm
from promise_tracker.service_layer.matching import newer_than_applied

from .test_matching import promise, status

pytestmark = pytest.mark.asyncio


async def test_a_stale_void_replayed_after_a_newer_snapshot_changes_nothing(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    today = clock.now().date()
    snapshot = {
        "customer_id": "C-1", "invoice_id": "INV-1", "number": "1", "currency": "EUR", "total": Decimal("500.00"),
        "balance": Decimal("500.00"), "issue_date": today - timedelta(days=30), "due_date": today - timedelta(days=5),
    }  # fmt: skip
    await ledger.customer("C-1")
    await ledger.send(InvoiceCreated(**snapshot, version=1))
    await quiet()
    async with tracker.client() as api:
        p = await promise(api, "C-1", ["INV-1"], "500.00", day=today + timedelta(days=3))
        # v2 (a write-off) was dead-lettered in this group; v3 (the write-off undone, open again) applied; then the
        # dead letter is replayed.
        await ledger.send(InvoiceUpdated(**snapshot, version=3))
        await ledger.send(InvoiceVoided(**{**snapshot, "balance": Decimal(0)}, status="written_off", version=2))
        await quiet()
        assert (await status(api, p["id"]))["status"] == "active", "the stale write-off cancelled nothing"
    async with tracker.runtime.sessions() as session:
        row = (await session.execute(select(orm.invoices))).one()
    assert (row.status, row.balance_minor, row.ledger_version, row.settled_at) == ("open", 50000, 3, None)


async def test_the_projections_sql_is_the_supersedes_rule(database_url: str) -> None:
    engine = make_engine(database_url, "promise_tracker", pool_size=1)
    t = orm.invoices
    try:
        async with engine.begin() as conn:
            for applied in (0, 1, 5):
                await conn.execute(delete(t))
                await conn.execute(
                    insert(t).values(tenant_id="t", invoice_id="i", customer_id="c", number="n", currency="EUR",
                                     balance_minor=0, status="open", ledger_version=applied)
                )  # fmt: skip
                for version in (0, 1, 4, 5, 6):
                    assert await conn.scalar(select(newer_than_applied(version)).select_from(t)) == supersedes(
                        version, applied
                    )
    finally:
        await engine.dispose()
