"""The durable deadline timer: promises whose check time has come are claimed in batches (FOR UPDATE
SKIP LOCKED, so replicas share the work) and judged set-wise: one statement claims a batch, one judges and
records it; then one statement per kind of consequence (counters, invoices released, events).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.outbox import OutboxWriter
from promise_tracker.adapters import orm
from promise_tracker.service_layer.outcomes import Outcomes, Resolution

# Claim: take a batch of due timers (FOR UPDATE SKIP LOCKED: replicas and workers never take the same
# ones) and delete them, by row address so the plan stays a handful of index and TID lookups however
# large the tables grow.
_CLAIM = text(
    """
    DELETE FROM deadline_timers
    WHERE ctid = ANY (ARRAY (
        SELECT ctid FROM deadline_timers
        WHERE check_at <= :now
        ORDER BY check_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING tenant_id, promise_id
    """
).bindparams(bindparam("now", type_=DateTime(timezone=True)), bindparam("limit", type_=Integer))

# Judge and record set-wise: each due promise is written once, with its verdict. The CASE is
# domain.promises.judge_at_deadline in SQL; the boundary tests in test_matching.py pin both.
# "Settled": nothing was owed on any covered invoice by the deadline, however it got settled (a late
# payment that settles the invoice after the deadline does not save the promise).
_JUDGE = text(
    """
    UPDATE promises AS p
    SET status = CASE
            WHEN p.received_minor >= p.amount_minor OR NOT EXISTS (
                SELECT 1 FROM invoices AS i
                WHERE i.tenant_id = p.tenant_id AND i.invoice_id = ANY (p.invoice_ids)
                  AND (i.settled_at IS NULL OR i.settled_at >= p.deadline + interval '1 second')
            ) THEN 'kept'
            WHEN p.received_minor > 0 THEN 'partially_kept'
            ELSE 'broken'
        END,
        resolved_at = :now
    FROM unnest(:tenants, :ids) AS due(tenant_id, promise_id)
    WHERE p.tenant_id = due.tenant_id AND p.promise_id = due.promise_id AND p.status = 'active'
    RETURNING p.*
    """
).bindparams(
    bindparam("now", type_=DateTime(timezone=True)),
    bindparam("tenants", type_=ARRAY(String)),
    bindparam("ids", type_=ARRAY(String)),
)


async def fire_due(session: AsyncSession, outbox: OutboxWriter, now: datetime, limit: int) -> int:
    claimed = (await session.execute(_CLAIM, {"now": now, "limit": limit})).all()
    if not claimed:
        return 0
    judged = (
        await session.execute(
            _JUDGE, {"now": now, "tenants": [c.tenant_id for c in claimed], "ids": [c.promise_id for c in claimed]}
        )
    ).all()
    # A timer whose promise already ended is simply gone now (ending a promise deletes its timer too).
    outcomes = Outcomes(session, outbox, now)
    await outcomes.resolve([Resolution(row, row.status, row.received_minor) for row in judged], recorded=True)
    await outcomes.flush()
    return len(claimed)


async def due_stats(session: AsyncSession, now: datetime) -> tuple[int, float]:
    t = orm.deadline_timers.c
    row = (
        await session.execute(
            select(func.count(), func.coalesce(func.extract("epoch", now - func.min(t.check_at)), 0)).where(
                t.check_at <= now
            )
        )
    ).one()
    return int(row[0]), float(row[1])
