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
from dunning_events.envelope import EventData
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


def _uuid(index: str) -> str:
    """The index-th UUID of the batch: 16 bytes of the `entropy` parameter (random, with the version-4 bits
    already set in Python: one os.urandom call per batch, where gen_random_uuid() reads the random source
    once per call, which cost more than the rest of building an event)."""
    return f"encode(substr(CAST(:entropy AS bytea), ({index})::int * 16 + 1, 16), 'hex')::uuid"


def _json_str(column: str) -> str:
    return f"to_json(CAST({column} AS text))"


# The envelope and payload as model_dump_json writes them (compact, fields in model order), assembled by
# concatenation: json_build_object cost twice as much. Every value that is not a constant goes through
# to_json (escaping) or is a number, date or uuid PostgreSQL formats itself. The fixed envelope fields
# come in one parameter per event type, written by json.dumps. (No ':' directly before a word in the
# literals: SQLAlchemy would take it for a parameter.)
_EVENT_JSON = (
    "concat('{\"id\":\"', n.event_id, CASE WHEN n.status = 'kept' THEN CAST(:kept_head AS text) "
    "ELSE CAST(:broken_head AS text) END, "
    f"{_json_str('n.tenant_id')}, ',\"subject\":', {_json_str('n.promise_id')}, "
    '\',"correlation_id":"\', n.correlation_id, \'","causation_id":\', \'null,"data":{"customer_id":\', '
    f"{_json_str('n.customer_id')}, ',\"promise_id\":', {_json_str('n.promise_id')}, "
    "',\"invoice_ids\":', to_json(CAST(n.invoice_ids AS text[])), "
    f"',\"currency\":', {_json_str('n.currency')}, "
    f'\',"amount":"\', {_money("n.amount_minor")}, \'","received":"\', {_money("n.received_minor")}, '
    "CASE WHEN n.status = 'kept' THEN '\"' ELSE concat("
    f'\'","shortfall":"\', {_money("n.amount_minor - greatest(n.received_minor, 0)")}, '
    "'\",\"partially_kept\":', CASE WHEN n.status = 'partially_kept' THEN 'true' ELSE 'false' END, "
    f'\',"deadline":"\', {_iso_utc("n.deadline")}, \'","broken_promise_count":\', n.broken_count) END, '
    "',\"plan_id\":', 'null}}')"
)
_V4_VERSION = bytes((b & 0x0F) | 0x40 for b in range(256))  # byte 6: version 4 in the high nibble
_V4_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))  # byte 8: the RFC 4122 variant


def _entropy(uuids: int) -> bytes:
    """`uuids` random version-4 UUIDs back to back, made the way uuid.uuid4 makes one."""
    raw = bytearray(os.urandom(16 * uuids))
    raw[6::16] = raw[6::16].translate(_V4_VERSION)
    raw[8::16] = raw[8::16].translate(_V4_VARIANT)
    return bytes(raw)


def _envelope_head(model: type[EventData], occurred_at: str) -> str:
    """The envelope's fixed fields between its id and its tenant_id, for one event type."""
    fields = {"type": model.event_type, "schema_version": model.schema_version, "source": SOURCE}
    fields["occurred_at"] = occurred_at
    return '",' + json.dumps(fields, separators=(",", ":"))[1:-1] + ',"tenant_id":'


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
        SELECT event_id, type, CAST(:topic AS text), tenant_id || ':' || customer_id, convert_to(payload, 'UTF8'),
               CAST(:headers AS jsonb)
        FROM (
            SELECT n.*, {_EVENT_JSON} AS payload
            FROM (
                SELECT n.*, {_uuid("2 * n.seq")} AS event_id, {_uuid("2 * n.seq + 1")} AS correlation_id,
                       CASE WHEN n.status = 'kept' THEN CAST(:kept_type AS text)
                            ELSE CAST(:broken_type AS text) END AS type
                FROM numbered AS n
                WHERE n.plan_id IS NULL
            ) AS n
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
    bindparam("kept_type", type_=Text),
    bindparam("broken_type", type_=Text),
    bindparam("headers", type_=Text),
    bindparam("kept_head", type_=Text),
    bindparam("broken_head", type_=Text),
    bindparam("entropy", type_=LargeBinary),
)

_CONSTANTS: dict[str, Any] = {
    "ts_format": 'YYYY-MM-DD"T"HH24:MI:SS',
    "odd_currencies": list(_ODD_MINOR_UNITS),
    "odd_units": list(_ODD_MINOR_UNITS.values()),
    "topic": PromiseBroken.topic,
    "kept_type": PromiseKept.event_type,
    "broken_type": PromiseBroken.event_type,
}
assert PromiseKept.topic == PromiseBroken.topic == topics.PROMISES


async def fire_due(session: AsyncSession, outbox: SetwiseOutboxWriter, now: datetime, limit: int) -> int:
    """Judge up to `limit` due promises in the caller's transaction; returns how many timers it claimed."""
    occurred_at = _AWARE_DATETIME.dump_python(now, mode="json")
    params = {
        **_CONSTANTS,
        "now": now,
        "limit": limit,
        "kept_head": _envelope_head(PromiseKept, occurred_at),
        "broken_head": _envelope_head(PromiseBroken, occurred_at),
        "entropy": _entropy(2 * limit),  # two UUIDs per event: its id and a new correlation id
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
