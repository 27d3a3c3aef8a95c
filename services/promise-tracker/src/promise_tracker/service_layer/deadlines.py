"""The durable deadline timer: promises whose check time has come are claimed in batches (FOR UPDATE
SKIP LOCKED, so replicas share the work) and judged set-wise: one statement claims, judges and records a
batch; then one statement per kind of consequence (counters, invoices released, events).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.outbox import OutboxWriter
from promise_tracker.adapters import orm
from promise_tracker.service_layer.outcomes import Outcomes, Resolution

# Claim, judge and record in one statement: the verdict is decided set-wise in PostgreSQL, so each due
# promise is written once (a separate SELECT ... FOR UPDATE would write every row twice). The CASE is
# domain.promises.judge_at_deadline in SQL; the boundary tests in test_matching.py pin both.
# "settled": nothing was owed on any covered invoice by the deadline, however it got settled (a late
# payment that settles the invoice after the deadline does not save the promise).
_CLAIM_AND_JUDGE = text(
    """
    WITH due AS (
        SELECT tenant_id, promise_id FROM deadline_timers
        WHERE check_at <= :now
        ORDER BY check_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), fired AS (
        DELETE FROM deadline_timers AS t USING due
        WHERE t.tenant_id = due.tenant_id AND t.promise_id = due.promise_id
        RETURNING t.tenant_id, t.promise_id
    )
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
    FROM fired
    WHERE p.tenant_id = fired.tenant_id AND p.promise_id = fired.promise_id AND p.status = 'active'
    RETURNING p.*
    """
).bindparams(bindparam("now", type_=DateTime(timezone=True)), bindparam("limit", type_=Integer))


async def fire_due(session: AsyncSession, outbox: OutboxWriter, now: datetime, limit: int) -> int:
    judged = (await session.execute(_CLAIM_AND_JUDGE, {"now": now, "limit": limit})).all()
    if not judged:
        # Timers whose promise already ended are deleted with the claim; nothing else to do.
        return 0
    outcomes = Outcomes(session, outbox, now)
    await outcomes.resolve([Resolution(row, row.status, row.received_minor) for row in judged], recorded=True)
    await outcomes.flush()
    return len(judged)


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
