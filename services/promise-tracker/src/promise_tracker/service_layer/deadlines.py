"""The durable deadline timer: promises whose check time has come are claimed in batches (FOR UPDATE
SKIP LOCKED, so replicas share the work) and judged set-wise: one claim, one verdict pass in Python,
one statement per kind of change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, any_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.outbox import OutboxWriter
from promise_tracker.adapters import orm
from promise_tracker.domain.promises import judge_at_deadline
from promise_tracker.service_layer.outcomes import Outcomes, Resolution


async def fire_due(session: AsyncSession, outbox: OutboxWriter, now: datetime, limit: int) -> int:
    p = orm.promises
    i = orm.invoices.c
    # Nothing left to pay on any covered invoice by the deadline (however it got settled) means the
    # promise cannot be broken. A late payment that settles the invoice after the deadline does not save it.
    owing = exists().where(
        i.tenant_id == p.c.tenant_id,
        i.invoice_id == any_(p.c.invoice_ids),
        or_(i.settled_at.is_(None), i.settled_at >= p.c.deadline + timedelta(seconds=1)),
    )
    due = (
        await session.execute(
            select(p, (~owing).label("settled"))
            .where(and_(p.c.status == "active", p.c.check_at <= now))
            .order_by(p.c.check_at)
            .limit(limit)
            .with_for_update(of=p, skip_locked=True)
        )
    ).all()
    if not due:
        return 0
    resolutions = []
    for row in due:
        outcome = judge_at_deadline(row.amount_minor, row.received_minor, row.settled)
        resolutions.append(Resolution(row, outcome.verdict, row.received_minor))
    outcomes = Outcomes(session, outbox, now)
    await outcomes.resolve(resolutions)
    await outcomes.flush()
    return len(due)


async def due_stats(session: AsyncSession, now: datetime) -> tuple[int, float]:
    p = orm.promises.c
    row = (
        await session.execute(
            select(func.count(), func.coalesce(func.extract("epoch", now - func.min(p.check_at)), 0)).where(
                p.status == "active", p.check_at <= now
            )
        )
    ).one()
    return int(row[0]), float(row[1])
