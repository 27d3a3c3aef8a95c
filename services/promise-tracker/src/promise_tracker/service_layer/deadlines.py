"""The durable deadline timer: promises whose check time has come are claimed in batches (FOR UPDATE
SKIP LOCKED, so replicas share the work) and judged set-wise.

A batch is ONE statement (a chain of data-modifying CTEs): claim the timers, judge and record the
promises, release their invoices, bump the customers' counters, number each customer's broken promises,
and write the promise.kept / promise.broken events of stand-alone promises straight into the outbox
(the envelope is assembled in SQL). A deadline check therefore costs no Python per promise: a burst of
one time zone's midnight is bound by PostgreSQL, not by the event loop the relay also needs.
Instalments of payment plans come back to Python, because a missed one may default its plan, and the
plan's events must follow in a particular order (see outcomes.py); they are few.

test_deadline_sql.py pins the SQL-built events to the contract (decoded with full validation and
compared with what the pydantic models write for the same rows).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, TypeAdapter
from sqlalchemy import DateTime, Integer, LargeBinary, String, Text, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events import topics
from dunning_events.events import PromiseBroken, PromiseKept
from dunning_events.money import ISO_CURRENCIES, minor_units
from dunning_events.tracing import current_trace_headers
from promise_tracker.adapters import orm
from promise_tracker.adapters.outbox import SetwiseOutboxWriter
from promise_tracker.service_layer.outcomes import SOURCE, Outcomes, Resolution

# Currencies whose minor unit is not the cent (JPY 0, KWD 3, ...); every other one has 2 decimals.
_AWARE_DATETIME = TypeAdapter(AwareDatetime)  # writes `occurred_at` exactly as the envelope model would
_ODD_MINOR_UNITS = {c: minor_units(c) for c in sorted(ISO_CURRENCIES) if minor_units(c) != 2}


def _iso_utc(column: str) -> str:
    """A timestamptz as pydantic writes an aware datetime in UTC: seconds, '.ffffff' only when non-zero, 'Z'."""
    return (
        f"(to_char({column} AT TIME ZONE 'UTC', CAST(:ts_format AS text)) || CASE WHEN extract(microseconds FROM {column}) "
        f"% 1000000 <> 0 THEN to_char({column} AT TIME ZONE 'UTC', '.US') ELSE '' END || 'Z')"
    )


def _money(minor: str) -> str:
    """Minor units as DecimalStr writes them: exactly the currency's decimals ('500.00', '120000', '1.250')."""
    return f"round(({minor})::numeric / power(10::numeric, n.units), n.units)::text"


def _uuid4(entropy: str, index: str) -> str:
    """The index-th 16 random bytes of `entropy` as a version-4 UUID (what uuid.uuid4 makes of os.urandom).

    One os.urandom call per batch: gen_random_uuid() costs a random-source read per call, which was the
    most expensive part of building an event in SQL."""
    block = f"substr({entropy}, ({index})::int * 16 + 1, 16)"
    return (
        f"encode(set_byte(set_byte({block}, 6, (get_byte({block}, 6) & 15) | 64), 8, "
        f"(get_byte({block}, 8) & 63) | 128), 'hex')::uuid"
    )


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
_FIRE = text(
    f"""
    WITH claimed AS (
        DELETE FROM deadline_timers
        WHERE ctid = ANY (ARRAY (
            SELECT ctid FROM deadline_timers
            WHERE check_at <= :now
            ORDER BY check_at
            LIMIT :limit
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
            resolved_at = :now
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
               row_number() OVER (ORDER BY j.deadline, j.promise_id) - 1 AS seq,
               CASE WHEN j.status <> 'kept' THEN
                   c.total - t.broken + row_number() OVER (
                       PARTITION BY j.tenant_id, j.customer_id, j.status = 'kept' ORDER BY j.deadline, j.promise_id)
               END AS broken_count
        FROM judged AS j
        JOIN counted AS c USING (tenant_id, customer_id)
        JOIN tallies AS t USING (tenant_id, customer_id)
        LEFT JOIN unnest(CAST(:odd_currencies AS text[]), CAST(:odd_units AS int[])) AS u(currency, units)
            ON u.currency = upper(j.currency)
    ), published AS (
        INSERT INTO outbox (event_id, event_type, topic, key, payload, headers)
        SELECT event_id, type, CAST(:topic AS text), tenant_id || ':' || customer_id,
               convert_to(json_build_object(
                   'id', event_id, 'type', type, 'schema_version', schema_version, 'source', CAST(:source AS text),
                   'occurred_at', CAST(:occurred_at AS text), 'tenant_id', tenant_id, 'subject', promise_id,
                   'correlation_id', correlation_id, 'causation_id', NULL, 'data', data
               )::text, 'UTF8'),
               CAST(:headers AS jsonb)
        FROM (
            SELECT n.tenant_id, n.customer_id, n.promise_id,
                   {_uuid4("CAST(:entropy AS bytea)", "2 * n.seq")} AS event_id,
                   {_uuid4("CAST(:entropy AS bytea)", "2 * n.seq + 1")} AS correlation_id,
                   CASE WHEN n.status = 'kept' THEN CAST(:kept_type AS text) ELSE CAST(:broken_type AS text) END AS type,
                   CASE WHEN n.status = 'kept' THEN CAST(:kept_version AS int) ELSE CAST(:broken_version AS int) END AS schema_version,
                   CASE WHEN n.status = 'kept' THEN json_build_object(
                       'customer_id', n.customer_id, 'promise_id', n.promise_id, 'invoice_ids', n.invoice_ids,
                       'currency', n.currency, 'amount', {_money("n.amount_minor")},
                       'received', {_money("n.received_minor")}, 'plan_id', NULL
                   ) ELSE json_build_object(
                       'customer_id', n.customer_id, 'promise_id', n.promise_id, 'invoice_ids', n.invoice_ids,
                       'currency', n.currency, 'amount', {_money("n.amount_minor")},
                       'received', {_money("n.received_minor")},
                       'shortfall', {_money("n.amount_minor - greatest(n.received_minor, 0)")},
                       'partially_kept', n.status = 'partially_kept', 'deadline', {_iso_utc("n.deadline")},
                       'broken_promise_count', n.broken_count, 'plan_id', NULL
                   ) END AS data
            FROM numbered AS n
            WHERE n.plan_id IS NULL
            ORDER BY n.deadline, n.promise_id
        ) AS ev
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM claimed) AS claimed, (SELECT count(*) FROM published) AS published, plan.*
    FROM (SELECT 1) AS one
    LEFT JOIN (SELECT * FROM numbered WHERE plan_id IS NOT NULL) AS plan ON true
    """
).bindparams(
    bindparam("now", type_=DateTime(timezone=True)),
    bindparam("limit", type_=Integer),
    bindparam("ts_format", type_=Text),
    bindparam("odd_currencies", type_=ARRAY(String)),
    bindparam("odd_units", type_=ARRAY(Integer)),
    bindparam("topic", type_=Text),
    bindparam("source", type_=Text),
    bindparam("kept_type", type_=Text),
    bindparam("broken_type", type_=Text),
    bindparam("kept_version", type_=Integer),
    bindparam("broken_version", type_=Integer),
    bindparam("headers", type_=Text),
    bindparam("occurred_at", type_=Text),
    bindparam("entropy", type_=LargeBinary),
)

_CONSTANTS: dict[str, Any] = {
    "ts_format": 'YYYY-MM-DD"T"HH24:MI:SS',
    "odd_currencies": list(_ODD_MINOR_UNITS),
    "odd_units": list(_ODD_MINOR_UNITS.values()),
    "topic": PromiseBroken.topic,
    "source": SOURCE,
    "kept_type": PromiseKept.event_type,
    "broken_type": PromiseBroken.event_type,
    "kept_version": PromiseKept.schema_version,
    "broken_version": PromiseBroken.schema_version,
}
assert PromiseKept.topic == PromiseBroken.topic == topics.PROMISES


async def fire_due(session: AsyncSession, outbox: SetwiseOutboxWriter, now: datetime, limit: int) -> int:
    """Judge up to `limit` due promises in the caller's transaction; returns how many timers it claimed."""
    params = {
        **_CONSTANTS,
        "now": now,
        "limit": limit,
        "occurred_at": _AWARE_DATETIME.dump_python(now, mode="json"),
        "entropy": os.urandom(32 * limit),  # two UUIDs per event: its id and a new correlation id
        "headers": json.dumps(current_trace_headers()),
    }
    rows = (await session.execute(_FIRE, params)).all()
    claimed, published = rows[0].claimed, rows[0].published
    instalments = [row for row in rows if row.promise_id is not None]
    if instalments:
        outcomes = Outcomes(session, outbox, now)
        counts = {(r.tenant_id, r.promise_id): r.broken_count for r in instalments if r.broken_count is not None}
        await outcomes.settle_plans([Resolution(r, r.status, r.received_minor) for r in instalments], counts)
        await outcomes.flush()
    if published:
        outbox.wake_after_commit(session)
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
