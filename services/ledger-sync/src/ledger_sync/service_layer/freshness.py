"""Freshness: per tenant and connector, when the last successful sync finished (and the ledger.synced event).

The policy engine refuses to dun on stale data; this is the fact it decides on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import TENANT_WIDE, Envelope, new_event
from dunning_events.events import LedgerSynced
from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from ledger_sync.adapters import orm

SOURCE = "ledger-sync"


async def record_sync(
    session: AsyncSession,
    outbox: OutboxWriter,
    clock: Clock,
    tenant_id: str,
    connector: str,
    *,
    started_at: datetime,
    succeeded: bool,
    records_changed: int = 0,
    error: str | None = None,
) -> Envelope[LedgerSynced]:
    """Record a finished sync (in the caller's transaction) and emit ledger.synced, saying whether the source is
    a scheduled connector (an enabled connection) or a push the tenant starts (a CSV import, a manual sync of a
    disabled connector)."""
    now = clock.now()
    c = orm.connections.c
    values: dict[str, Any] = {"last_attempt_at": now, "last_error": None if succeeded else error, "updated_at": now}
    if succeeded:
        values["last_success_at"] = now
        values["records_changed"] = records_changed
    stmt = insert(orm.connections).values(
        tenant_id=tenant_id,
        connector=connector,
        # A connection row that appears only because of a sync (CSV import) is not a scheduled connector.
        enabled=False,
        **values,
    )
    last_success, scheduled = (
        await session.execute(
            stmt.on_conflict_do_update(index_elements=[c.tenant_id, c.connector], set_=values).returning(
                c.last_success_at, c.enabled
            )
        )
    ).one()
    ev = new_event(
        LedgerSynced(
            customer_id=TENANT_WIDE,
            connector=connector,
            succeeded=succeeded,
            started_at=started_at,
            finished_at=now,
            last_successful_sync_at=last_success,
            records_changed=records_changed,
            error=error,
            # Only a connector the scheduler runs makes the ledger stale by its silence; a file import never does.
            scheduled=scheduled,
        ),
        tenant_id=tenant_id,
        source=SOURCE,
        occurred_at=now,
    )
    await outbox.add(session, [ev])
    return ev


async def record_unscheduled(
    session: AsyncSession, outbox: OutboxWriter, clock: Clock, tenant_id: str, connector: str
) -> None:
    """A connector was disabled: say so on ledger.synced (scheduled false, no sync ran), so the policy engine stops
    waiting for syncs that will not come — its silence no longer makes the tenant's ledger stale."""
    c = orm.connections.c
    last_success = await session.scalar(
        select(c.last_success_at).where(c.tenant_id == tenant_id, c.connector == connector)
    )
    now = clock.now()
    ev = new_event(
        LedgerSynced(
            customer_id=TENANT_WIDE, connector=connector, succeeded=False, started_at=now, finished_at=now,
            last_successful_sync_at=last_success, error="connector disabled: no scheduled syncs", scheduled=False,
        ),
        tenant_id=tenant_id, source=SOURCE, occurred_at=now,
    )  # fmt: skip
    await outbox.add(session, [ev])


async def freshness(session: AsyncSession, tenant_id: str, now: datetime) -> list[dict[str, Any]]:
    c = orm.connections.c
    rows = await session.execute(
        select(c.connector, c.enabled, c.last_success_at, c.last_attempt_at, c.last_error, c.records_changed)
        .where(c.tenant_id == tenant_id)
        .order_by(c.connector)
    )
    return [
        {
            "connector": r.connector,
            "scheduled": r.enabled,
            "last_successful_sync_at": r.last_success_at.isoformat() if r.last_success_at else None,
            "age_seconds": (now - r.last_success_at).total_seconds() if r.last_success_at else None,
            "last_attempt_at": r.last_attempt_at.isoformat() if r.last_attempt_at else None,
            "last_error": r.last_error,
            "records_changed": r.records_changed,
        }
        for r in rows
    ]
