"""The durable deadline timer: promises whose check time has come are claimed in batches (FOR UPDATE
SKIP LOCKED, so replicas share the work) and judged set-wise.

A batch is ONE statement (a chain of data-modifying CTEs): claim the timers, judge and record the
promises, release their invoices, bump the customers' counters and number each customer's broken
promises. It returns the judged promises in deadline order, each with its running broken count and its
currency's decimals. Python then writes the promise.kept / promise.broken events of the stand-alone
ones (adapters/deadline_events.py: the documents built directly, byte for byte what the pydantic models
write, no per-event validation) and COPYs them into the outbox in one go: ~15 µs of Python per check,
so a burst of one time zone's midnight stays bound by PostgreSQL, not by the event loop the relay also
needs. Instalments of payment plans go through Outcomes.settle_plans, because a missed one may default
its plan, and the plan's events must follow in a particular order (see outcomes.py); they are few.
"""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.bulk import raw_connection
from dunning_events.money import ISO_CURRENCIES, minor_units
from dunning_events.tracing import current_trace_headers
from promise_tracker.adapters import orm
from promise_tracker.adapters.deadline_events import JUDGED_COLUMNS, OUTBOX_COLUMNS, outbox_records
from promise_tracker.adapters.outbox import SetwiseOutboxWriter
from promise_tracker.service_layer.outcomes import Outcomes, Resolution

# Currencies whose minor unit is not the cent (JPY 0, KWD 3, ...); every other one has 2 decimals.
_ODD_MINOR_UNITS = {c: minor_units(c) for c in sorted(ISO_CURRENCIES) if minor_units(c) != 2}


# Claim: take a batch of due timers (FOR UPDATE SKIP LOCKED: replicas and workers never take the same
# ones) and delete them, by row address so the plan stays a handful of index and TID lookups however
# large the tables grow.
# Judge: the CASE is domain.promises.judge_at_deadline in SQL; the boundary tests in test_matching.py pin
# both. "Settled": nothing was owed on any covered invoice by the deadline, however it got settled (a
# late payment that settles the invoice after the deadline does not save the promise). A timer whose
# promise already ended finds no active promise and is simply gone (ending a promise deletes its timer).
# Counters: upserted in key order, so concurrent batches lock customers in the same order (no deadlock).
# Numbering: a broken promise carries its customer's running count, in deadline order within the batch,
# ending at the new total.
# Parameters (asyncpg's, the statement runs on the raw connection): $1 now, $2 the batch size, $3/$4 the
# currencies whose minor unit is not the cent and their decimals.
_FIRE = f"""
    WITH claimed AS (
        DELETE FROM deadline_timers
        WHERE ctid = ANY (ARRAY (
            SELECT ctid FROM deadline_timers
            WHERE check_at <= $1
            ORDER BY check_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING tenant_id, promise_id
    ), judged AS (
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
            resolved_at = $1
        FROM claimed
        WHERE p.tenant_id = claimed.tenant_id AND p.promise_id = claimed.promise_id AND p.status = 'active'
        RETURNING p.*
    ), released AS (
        DELETE FROM commitments AS c USING judged AS j
        WHERE j.plan_id IS NULL
          AND c.tenant_id = j.tenant_id AND c.holder_id = j.promise_id AND c.holder_kind = 'promise'
    ), tallies AS (
        SELECT tenant_id, customer_id,
               count(*) FILTER (WHERE status = 'kept') AS kept,
               count(*) FILTER (WHERE status <> 'kept') AS broken
        FROM judged GROUP BY tenant_id, customer_id
    ), counted AS (
        INSERT INTO customers AS cu (tenant_id, customer_id, kept_promise_count, broken_promise_count)
        SELECT tenant_id, customer_id, kept, broken FROM tallies ORDER BY tenant_id, customer_id
        ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
            kept_promise_count = cu.kept_promise_count + EXCLUDED.kept_promise_count,
            broken_promise_count = cu.broken_promise_count + EXCLUDED.broken_promise_count
        RETURNING tenant_id, customer_id, broken_promise_count AS total
    ), numbered AS (
        SELECT j.*, coalesce(u.units, 2) AS units,
               CASE WHEN j.status <> 'kept' THEN
                   c.total - t.broken + row_number() OVER (
                       PARTITION BY j.tenant_id, j.customer_id, j.status = 'kept' ORDER BY j.deadline, j.promise_id)
               END AS broken_count
        FROM judged AS j
        JOIN counted AS c USING (tenant_id, customer_id)
        JOIN tallies AS t USING (tenant_id, customer_id)
        LEFT JOIN unnest(CAST($3 AS text[]), CAST($4 AS int[])) AS u(currency, units)
            ON u.currency = upper(j.currency)
    )
    SELECT {", ".join(f"n.{c}" for c in JUDGED_COLUMNS)}, (SELECT count(*) FROM claimed) AS claimed
    FROM (SELECT 1) AS one
    LEFT JOIN numbered AS n ON true
    ORDER BY n.deadline, n.promise_id
    """
_ODD = (list(_ODD_MINOR_UNITS), list(_ODD_MINOR_UNITS.values()))
_PROMISE_ID, _PLAN_ID, _CLAIMED = (
    JUDGED_COLUMNS.index("promise_id"),
    JUDGED_COLUMNS.index("plan_id"),
    len(JUDGED_COLUMNS),
)


async def fire_due(session: AsyncSession, outbox: SetwiseOutboxWriter, now: datetime, limit: int) -> int:
    """Judge up to `limit` due promises in the caller's transaction; returns how many timers it claimed."""
    # On the session's asyncpg connection: asyncpg records unpack by position at C speed, where SQLAlchemy's
    # result rows cost several µs per promise. One row even when nothing was judged (the LEFT JOIN), so the
    # claimed count always comes back.
    apg = await raw_connection(session)
    rows = await apg.fetch(_FIRE, now, limit, *_ODD)
    claimed = rows[0][_CLAIMED]
    standalone = [row for row in rows if row[_PLAN_ID] is None and row[_PROMISE_ID] is not None]
    if standalone:
        headers = json.dumps(current_trace_headers())
        await outbox.copy_records(session, OUTBOX_COLUMNS, outbox_records(standalone, now, headers))
    instalments = [SimpleNamespace(**dict(row.items())) for row in rows if row[_PLAN_ID] is not None]
    if instalments:
        outcomes = Outcomes(session, outbox, now)
        counts = {(r.tenant_id, r.promise_id): r.broken_count for r in instalments if r.broken_count is not None}
        await outcomes.settle_plans([Resolution(r, r.status, r.received_minor) for r in instalments], counts)
        await outcomes.flush()
    return int(claimed)


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
