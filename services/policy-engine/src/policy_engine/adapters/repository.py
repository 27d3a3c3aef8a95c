"""Reading and writing cases, debtors, freshness, contact attempts and the timeline — set-wise.

The statements of the timer and the event handlers live here: the timer (service_layer.firing) calls the
functions, the handlers go through `PostgresRepository`, the implementation of their protocol
(service_layer.storage.DunningRepository).

Statements go straight to the asyncpg connection under the session's transaction: a batch of thousands
of cases is one UPDATE over unnest()ed arrays and one COPY into the timeline, not a statement per row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import fields, replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.bulk import ArrayInsert, column_arrays, raw_connection, unnest
from dunning_events.envelope import Envelope
from dunning_events.events import CustomerUpserted
from dunning_events.outbox import OutboxWriter
from dunning_kit.personal_data import forget_published_events
from policy_engine.adapters import orm
from policy_engine.adapters.step_events import OUTBOX_COLUMNS
from policy_engine.domain.cases import FREE_TEXT_MARKERS, Case, Debtor, redact_free_text
from policy_engine.domain.closure import ClosureReason
from policy_engine.domain.freshness import SourceFreshness
from policy_engine.domain.policy import Policy
from policy_engine.service_layer.policy_book import PolicyBook, load_assignments
from policy_engine.service_layer.storage import PlanningProfile, Reminded

# Arrays of arrays cannot be unnest()ed row by row, so list columns travel joined by the ASCII unit
# separator (never part of a step name, a pause code or an id from an ERP).
SEP = "\x1f"

CASE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Case) if f.name not in ("notes", "holds"))
_LIST_COLUMNS = {"pause_reasons", "promise_ids", "done_steps"}
_PG_TYPES = {
    "tenant_id": "text", "invoice_id": "text", "customer_id": "text", "number": "text", "currency": "text",
    "total_minor": "int8", "balance_minor": "int8", "due_date": "date", "status": "text",
    "pause_reasons": "text", "promise_ids": "text", "plan_id": "text", "block_reason": "text",
    "block_until": "timestamptz", "policy_id": "text", "policy_version": "int4", "next_step": "text", "planned_at": "timestamptz",
    "next_at": "timestamptz", "shift_days": "int4", "done_steps": "text", "last_offset": "int4",
    "last_tone": "text", "last_sent_at": "timestamptz", "last_step_id": "text", "went_late": "bool",
    "in_default": "bool", "compensation_charged": "bool", "replan": "bool", "reminded_at": "timestamptz",
    "awaiting_reminder": "bool", "closed_reason": "text", "closure": "text",
    "trace": "text", "ledger_version": "int8",
}  # fmt: skip
assert set(_PG_TYPES) == set(CASE_COLUMNS), "every Case field needs a column type"

_SELECT_CASES = "SELECT " + ", ".join(CASE_COLUMNS) + " FROM cases"
_KEYS = ("tenant_id", "invoice_id")
_INSERT_CASE = (
    "INSERT INTO cases ("
    + ", ".join(CASE_COLUMNS)
    + ") VALUES ("
    + ", ".join(
        f"string_to_array(${i}::text, chr(31))" if col in _LIST_COLUMNS else f"${i}::{_PG_TYPES[col]}"
        for i, col in enumerate(CASE_COLUMNS, start=1)
    )
    + ") ON CONFLICT (tenant_id, invoice_id) DO NOTHING"
)
# The engine's modules reach the session's asyncpg connection through the repository.
driver = raw_connection
_TIMELINE_COLUMNS = ["tenant_id", "customer_id", "invoice_id", "at", "kind", "step_name", "reason", "detail"]


def case_from_record(record: asyncpg.Record) -> Case:
    # Every column is a Case field: fill the instance directly (the hot path decodes thousands per batch).
    case = Case.__new__(Case)
    case.__dict__.update(record.items())
    if case.closure is not None:
        case.closure = ClosureReason(case.closure)  # the column holds the value; rules compare members
    case.notes = []
    case.holds = []
    return case


def _column_arrays(cases: Sequence[Case], columns: Sequence[str] = CASE_COLUMNS) -> list[list[Any]]:
    arrays: list[list[Any]] = []
    join = SEP.join
    for col in columns:
        get = attrgetter(col)
        if col in _LIST_COLUMNS:
            arrays.append([join(get(c)) for c in cases])
        else:
            arrays.append(list(map(get, cases)))
    return arrays


def _update_statement(columns: Sequence[str]) -> str:
    cols = [*_KEYS, *(c for c in columns if c not in _KEYS)]
    return (
        "UPDATE cases AS c SET "
        + ", ".join(
            f"{col} = string_to_array(u.{col}, chr(31))" if col in _LIST_COLUMNS else f"{col} = u.{col}"
            for col in cols
            if col not in _KEYS
        )
        + f" FROM {unnest([(col, _PG_TYPES[col]) for col in cols])}"
        + " WHERE c.tenant_id = u.tenant_id AND c.invoice_id = u.invoice_id"
    )


_UPDATE_CASES = _update_statement(CASE_COLUMNS)


# What a timer decision may change (ledger facts and pause flags are the event handlers' business).
TIMER_COLUMNS: tuple[str, ...] = (
    "tenant_id", "invoice_id", "status", "pause_reasons", "policy_id", "policy_version", "next_step", "planned_at",
    "next_at", "shift_days", "done_steps", "last_offset", "last_tone", "last_sent_at", "last_step_id", "went_late",
    "in_default", "compensation_charged", "replan", "awaiting_reminder", "closed_reason", "closure",
)  # fmt: skip
_UPDATE_TIMER = _update_statement(TIMER_COLUMNS)


async def save_cases(apg: asyncpg.Connection, cases: Sequence[Case], columns: Sequence[str] = CASE_COLUMNS) -> None:
    if not cases:
        return
    if columns is CASE_COLUMNS:
        await apg.execute(_UPDATE_CASES, *_column_arrays(cases))
    else:
        cols = [*_KEYS, *(c for c in columns if c not in _KEYS)]
        await apg.execute(_UPDATE_TIMER if columns is TIMER_COLUMNS else _update_statement(columns),
                          *_column_arrays(cases, cols))  # fmt: skip


_INSERT_CASES = ArrayInsert(
    "cases",
    [(col, _PG_TYPES[col]) for col in CASE_COLUMNS],
    values={col: f"string_to_array(u.{col}, chr(31))" for col in _LIST_COLUMNS},
    tail="ON CONFLICT (tenant_id, invoice_id) DO NOTHING",
)


async def insert_cases(apg: asyncpg.Connection, cases: Sequence[Case]) -> None:
    if cases:
        await _INSERT_CASES.execute(apg, _column_arrays(cases))


async def insert_case(apg: asyncpg.Connection, case: Case) -> bool:
    """Insert a new case; False if the invoice already has one."""
    args = [SEP.join(getattr(case, col)) if col in _LIST_COLUMNS else getattr(case, col) for col in CASE_COLUMNS]
    status: str = await apg.execute(_INSERT_CASE, *args)
    return status.endswith(" 1")


async def load_cases(
    apg: asyncpg.Connection, tenant_id: str, invoice_ids: Iterable[str], *, lock: bool = True
) -> dict[str, Case]:
    rows = await apg.fetch(
        _SELECT_CASES
        + " WHERE tenant_id = $1 AND invoice_id = ANY($2::text[]) ORDER BY invoice_id"
        + (" FOR UPDATE" if lock else ""),
        tenant_id,
        list(dict.fromkeys(invoice_ids)),
    )
    return {r["invoice_id"]: case_from_record(r) for r in rows}


async def load_where(
    apg: asyncpg.Connection, where: str, *args: Any, lock: bool = True, limit: int | None = None
) -> list[Case]:
    rows = await apg.fetch(
        f"{_SELECT_CASES} WHERE {where} ORDER BY tenant_id, invoice_id"
        + (f" LIMIT {int(limit)}" if limit is not None else "")
        + (" FOR UPDATE" if lock else ""),
        *args,
    )
    return [case_from_record(r) for r in rows]


# Advisory-lock namespace of per-customer timer claims (two-int form: classid 23, objid = key hash).
_CLAIM_NS = 23
_CUSTOMER_HASH = "(hashtext(tenant_id || ':' || customer_id)::bigint & 4294967295)"


async def claim_due(apg: asyncpg.Connection, now: datetime, limit: int) -> list[Case]:
    """Claim due cases a whole customer at a time, so one customer's invoices at one step always go out as one
    message, even with several replicas.

    1. Candidates: due cases in (next_at, customer) order, leaving out customers another replica holds now.
    2. A transaction-scoped advisory lock per customer (try: a customer taken meanwhile is simply left out).
    3. Every due case of the customers held, locked FOR UPDATE SKIP LOCKED. Only the holder of a customer's
       advisory lock locks its cases in bulk, so replicas never wait on each other; a case an event handler
       holds at that moment (a payment arriving) is left for the next round rather than waited for, so the
       timer never waits on a consumer and the two cannot deadlock. Each due case is decided exactly once.
    """
    candidates = await apg.fetch(
        "SELECT tenant_id, customer_id FROM cases WHERE next_at <= $1 AND "
        f"{_CUSTOMER_HASH} NOT IN (SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' "
        f"AND classid = {_CLAIM_NS} AND objsubid = 2) "
        "ORDER BY next_at, tenant_id, customer_id LIMIT $2",
        now,
        limit,
    )
    keys = list(dict.fromkeys((r["tenant_id"], r["customer_id"]) for r in candidates))
    if not keys:
        return []
    tenants, customers = zip(*keys, strict=True)
    held = await apg.fetch(
        "SELECT t, c FROM unnest($1::text[], $2::text[]) AS k(t, c) "
        f"WHERE pg_try_advisory_xact_lock({_CLAIM_NS}, hashtext(t || ':' || c))",
        list(tenants),
        list(customers),
    )
    if not held:
        return []
    rows = await apg.fetch(
        f"{_SELECT_CASES} WHERE next_at <= $1 AND (tenant_id, customer_id) IN "
        "(SELECT * FROM unnest($2::text[], $3::text[])) ORDER BY tenant_id, customer_id, invoice_id "
        "FOR UPDATE SKIP LOCKED",
        now,
        [r["t"] for r in held],
        [r["c"] for r in held],
    )
    return [case_from_record(r) for r in rows]


async def hold_customer(apg: asyncpg.Connection, tenant_id: str, customer_id: str) -> None:
    """Wait for the customer's claim lock (claim_due's) and keep it to the end of the transaction: a timer batch
    deciding the customer's steps finishes first, and none starts until this transaction commits."""
    await apg.execute(f"SELECT pg_advisory_xact_lock({_CLAIM_NS}, hashtext($1 || ':' || $2))", tenant_id, customer_id)


async def load_debtors(apg: asyncpg.Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Debtor]:
    keys = list(set(keys))
    out = {k: Debtor(customer_id=k[1]) for k in keys}
    if not keys:
        return out
    tenants, customers = zip(*keys, strict=True)
    rows = await apg.fetch(
        "SELECT tenant_id, customer_id, time_zone, country, segment, tags, consent, revoked, blocked, "
        "broken_promise_count, erased_at IS NOT NULL AS erased FROM customers WHERE (tenant_id, customer_id) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[]))",
        list(tenants),
        list(customers),
    )
    for r in rows:
        consent = r["consent"]
        out[(r["tenant_id"], r["customer_id"])] = Debtor(
            customer_id=r["customer_id"],
            time_zone=r["time_zone"],
            country=r["country"],
            segment=r["segment"],
            tags=frozenset(r["tags"]),
            consent=orjson.loads(consent) if isinstance(consent, str) else dict(consent or {}),
            revoked=frozenset(r["revoked"]),
            blocked=r["blocked"],
            erased=r["erased"],
            broken_promise_count=r["broken_promise_count"],
        )
    return out


async def with_late_history(apg: asyncpg.Connection, debtors: Sequence[Debtor], tenant_id: str) -> list[Debtor]:
    """The debtors with their late-payer history (invoices that went past their due date unpaid), counted
    from the cases when a policy is resolved: the timer never writes customer rows, so it never waits on
    an event handler that holds one."""
    ids = sorted({d.customer_id for d in debtors})
    rows = await apg.fetch(
        "SELECT customer_id, count(*) AS n FROM cases WHERE tenant_id = $1 AND customer_id = ANY($2::text[]) "
        "AND went_late GROUP BY customer_id",
        tenant_id,
        ids,
    )
    counts = {r["customer_id"]: r["n"] for r in rows}
    return [replace(d, late_invoice_count=counts.get(d.customer_id, 0)) for d in debtors]


async def lock_customers(
    apg: asyncpg.Connection, tenant_id: str, customer_ids: Sequence[str]
) -> dict[str, asyncpg.Record]:
    rows = await apg.fetch(
        "SELECT customer_id, known, time_zone, country, segment, tags FROM customers WHERE tenant_id = $1 "
        "AND customer_id = ANY($2::text[]) ORDER BY customer_id FOR UPDATE",
        tenant_id,
        list(customer_ids),
    )
    return {r["customer_id"]: r for r in rows}


_CUSTOMER_COLUMNS = [
    (c, "text") for c in ("customer_id", "time_zone", "locale", "country", "segment", "tags", "consent")
]
_UPSERT_CUSTOMERS = ArrayInsert(
    "customers",
    _CUSTOMER_COLUMNS,
    values={
        "tenant_id": "$1", "known": "true", "tags": "string_to_array(u.tags, chr(31))", "consent": "u.consent::jsonb"
    },
    scalars=1,
    tail="ON CONFLICT (tenant_id, customer_id) DO UPDATE SET known = true, time_zone = EXCLUDED.time_zone, "
    "locale = EXCLUDED.locale, country = EXCLUDED.country, segment = EXCLUDED.segment, tags = EXCLUDED.tags, "
    "consent = EXCLUDED.consent",
)  # fmt: skip


async def upsert_customers(apg: asyncpg.Connection, tenant_id: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """rows: (customer_id, time_zone, locale, country, segment, tags joined by SEP, consent JSON)."""
    if not rows:
        return
    await _UPSERT_CUSTOMERS.execute(apg, column_arrays(rows, len(_CUSTOMER_COLUMNS)), tenant_id)


async def ensure_customer(apg: asyncpg.Connection, tenant_id: str, customer_id: str) -> None:
    await apg.execute(
        "INSERT INTO customers (tenant_id, customer_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", tenant_id, customer_id
    )


async def mark_erased(
    apg: asyncpg.Connection, tenant_id: str, customer_id: str, erased_at: datetime, reason: str
) -> bool:
    """Record customer.erased on the customer (kept: it is what stops dunning for good) and drop what the
    projection holds beyond the facts dunning and the audit need. True the first time."""
    await ensure_customer(apg, tenant_id, customer_id)
    before = await apg.fetchval(
        "SELECT erased_at FROM customers WHERE tenant_id = $1 AND customer_id = $2 FOR UPDATE", tenant_id, customer_id
    )
    await apg.execute(
        "UPDATE customers SET erased_at = COALESCE(erased_at, $3), erasure_reason = COALESCE(erasure_reason, $4), "
        "tags = '{}', block_reason = NULL, block_until = NULL WHERE tenant_id = $1 AND customer_id = $2",
        tenant_id, customer_id, erased_at, reason,
    )  # fmt: skip
    await apg.execute(
        "UPDATE cases SET block_reason = NULL WHERE tenant_id = $1 AND customer_id = $2 AND block_reason IS NOT NULL",
        tenant_id, customer_id,
    )  # fmt: skip
    return before is None


ERASED_NOTE = "[erased]"  # what a cut note reads (as redact_free_text's marker text)


async def redact_timeline(apg: asyncpg.Connection, tenant_id: str, customer_id: str) -> int:
    """Cut the free text (dispute reasons, block reasons) out of the customer's timeline entries."""
    rows = await apg.fetch(
        "SELECT id, reason FROM timeline WHERE tenant_id = $1 AND customer_id = $2 AND reason LIKE ANY($3::text[]) "
        "FOR UPDATE",
        tenant_id, customer_id, [f"%{m}%" for m in FREE_TEXT_MARKERS],
    )  # fmt: skip
    changed = [(r["id"], redact_free_text(r["reason"])) for r in rows]
    if changed:
        await apg.executemany("UPDATE timeline SET reason = $2 WHERE id = $1", changed)
    # The note of a logged call, a collector task, a completed hand-off or a person's note (kind `note`) is free
    # text too: kept in `detail` (and the call log), never in the reason, so it is cut here whole.
    notes = await apg.fetchval(
        "WITH cut AS (UPDATE timeline SET detail = jsonb_set(detail, '{note}', to_jsonb($3::text)) "
        "WHERE tenant_id = $1 AND customer_id = $2 AND kind IN ('call', 'task', 'note', 'hand_off') AND detail->>'note' IS NOT NULL "
        "RETURNING 1) SELECT count(*) FROM cut",
        tenant_id, customer_id, ERASED_NOTE,
    )  # fmt: skip
    await apg.execute(
        "UPDATE calls SET note = $3 WHERE tenant_id = $1 AND customer_id = $2 AND note IS NOT NULL",
        tenant_id, customer_id, ERASED_NOTE,
    )  # fmt: skip
    return len(changed) + int(notes)


async def freshness_facts(
    apg: asyncpg.Connection, tenants: Iterable[str]
) -> tuple[dict[str, list[SourceFreshness]], dict[str, timedelta]]:
    """Per tenant: what ledger.synced said of each connector, and the import cadence it declared (if any)."""
    tenants = list(set(tenants))
    sources: dict[str, list[SourceFreshness]] = {t: [] for t in tenants}
    for r in await apg.fetch(
        "SELECT tenant_id, connector, scheduled, last_success_at FROM ledger_freshness "
        "WHERE tenant_id = ANY($1::text[])",
        tenants,
    ):
        sources[r["tenant_id"]].append(SourceFreshness(r["connector"], r["scheduled"], r["last_success_at"]))
    cadences = {
        r["tenant_id"]: timedelta(hours=r["expected_every_hours"])
        for r in await apg.fetch(
            "SELECT tenant_id, expected_every_hours FROM import_cadences WHERE tenant_id = ANY($1::text[])", tenants
        )
    }
    return sources, cadences


async def record_sync(
    apg: asyncpg.Connection, tenant_id: str, connector: str, scheduled: bool, success: datetime | None,
    reported: datetime, error: str | None,
) -> None:  # fmt: skip
    await apg.execute(
        "INSERT INTO ledger_freshness (tenant_id, connector, last_success_at, last_report_at, last_error, scheduled) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, connector) DO UPDATE SET "
        "last_success_at = GREATEST(ledger_freshness.last_success_at, EXCLUDED.last_success_at), "
        "last_report_at = GREATEST(ledger_freshness.last_report_at, EXCLUDED.last_report_at), "
        "last_error = EXCLUDED.last_error, scheduled = EXCLUDED.scheduled",
        tenant_id, connector, success, reported, error, scheduled,
    )  # fmt: skip


async def set_import_cadence(apg: asyncpg.Connection, tenant_id: str, hours: int | None, now: datetime) -> None:
    if hours is None:
        await apg.execute("DELETE FROM import_cadences WHERE tenant_id = $1", tenant_id)
    else:
        await apg.execute(
            "INSERT INTO import_cadences (tenant_id, expected_every_hours, updated_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (tenant_id) DO UPDATE SET expected_every_hours = EXCLUDED.expected_every_hours, "
            "updated_at = EXCLUDED.updated_at",
            tenant_id, hours, now,
        )  # fmt: skip


async def ledger_sources(apg: asyncpg.Connection, tenant_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await apg.fetch(
        "SELECT connector, scheduled, last_success_at, last_report_at, last_error FROM ledger_freshness "
        "WHERE tenant_id = $1 ORDER BY connector",
        tenant_id,
    )
    return rows


async def contact_attempts(
    apg: asyncpg.Connection, keys: Iterable[tuple[str, str]], channels: Iterable[str], since: datetime
) -> list[asyncpg.Record]:
    keys = list(set(keys))
    if not keys:
        return []
    tenants, customers = zip(*keys, strict=True)
    rows: list[asyncpg.Record] = await apg.fetch(
        "SELECT tenant_id, customer_id, invoice_id, channel, delivery_id, at FROM contact_attempts "
        "WHERE (tenant_id, customer_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
        "AND channel = ANY($3::text[]) AND at > $4",
        list(tenants),
        list(customers),
        list(set(channels)),
        since,
    )
    return rows


async def write_notes(apg: asyncpg.Connection, cases: Iterable[Case], at: datetime) -> int:
    """Append every case's collected notes to the timeline (COPY) and clear them."""
    records: list[tuple[Any, ...]] = []
    append = records.append
    for c in cases:
        if not c.notes:
            continue
        tenant, customer, invoice = c.tenant_id, c.customer_id, c.invoice_id
        for n in c.notes:
            append((tenant, customer, invoice, at, n.kind, n.step, n.reason, orjson.dumps(n.detail).decode()))
        c.notes.clear()
    if records:
        await apg.copy_records_to_table("timeline", records=records, columns=_TIMELINE_COLUMNS)
    return len(records)


async def write_customer_note(
    apg: asyncpg.Connection, tenant_id: str, customer_id: str, at: datetime, kind: str, reason: str, **detail: Any
) -> None:
    await apg.execute(
        "INSERT INTO timeline (tenant_id, customer_id, invoice_id, at, kind, reason, detail) "
        "VALUES ($1, $2, NULL, $3, $4, $5, $6::text::jsonb)",
        tenant_id, customer_id, at, kind, reason, json.dumps(detail),
    )  # fmt: skip


async def write_invoice_note(
    apg: asyncpg.Connection, tenant_id: str, customer_id: str, invoice_id: str, at: datetime, kind: str, reason: str,
    step: str | None = None, **detail: Any,
) -> None:  # fmt: skip
    await apg.execute(
        "INSERT INTO timeline (tenant_id, customer_id, invoice_id, at, kind, step_name, reason, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb)",
        tenant_id, customer_id, invoice_id, at, kind, step, reason, json.dumps(detail),
    )  # fmt: skip


async def step_name_of(apg: asyncpg.Connection, tenant_id: str, invoice_id: str, step_id: str) -> str | None:
    """The name of the step the engine sent under `step_id` for this invoice (from its `sent` note)."""
    return await apg.fetchval(
        "SELECT step_name FROM timeline WHERE tenant_id = $1 AND invoice_id = $2 AND kind = 'sent' "
        "AND detail->>'step_id' = $3 ORDER BY id DESC LIMIT 1",
        tenant_id, invoice_id, step_id,
    )  # fmt: skip


async def mark_reminded(
    apg: asyncpg.Connection, tenant_id: str, invoice_ids: list[str], at: datetime, now: datetime
) -> list[asyncpg.Record]:
    """A reminder reached the debtor about these invoices: remember when the first one did, and wake the cases
    whose hand-off to collections waited for it (their timer fires now). Returns the cases woken."""
    rows = await apg.fetch(
        "WITH t AS (SELECT tenant_id, invoice_id, awaiting_reminder FROM cases WHERE tenant_id = $1 "
        "AND invoice_id = ANY($2::text[]) AND (reminded_at IS NULL OR awaiting_reminder) ORDER BY invoice_id "
        "FOR UPDATE) "
        "UPDATE cases AS c SET reminded_at = COALESCE(c.reminded_at, $3), awaiting_reminder = false, "
        "next_at = CASE WHEN t.awaiting_reminder AND c.status = 'open' AND cardinality(c.pause_reasons) = 0 "
        "THEN $4 ELSE c.next_at END, "
        "planned_at = CASE WHEN t.awaiting_reminder THEN $4 ELSE c.planned_at END "
        "FROM t WHERE c.tenant_id = t.tenant_id AND c.invoice_id = t.invoice_id "
        "RETURNING c.customer_id, c.invoice_id, c.next_step, t.awaiting_reminder AS woken",
        tenant_id, invoice_ids, at, now,
    )  # fmt: skip
    return [r for r in rows if r["woken"]]


async def copy_outbox(apg: asyncpg.Connection, records: list[tuple[Any, ...]]) -> None:
    """Events already encoded (see step_events): COPY into the outbox, in order."""
    if records:
        await apg.copy_records_to_table("outbox", records=records, columns=OUTBOX_COLUMNS)


# ---------------------------------------------------------------- what the event handlers write besides cases


async def flag_replan(apg: asyncpg.Connection, where: str, *args: Any, now: datetime) -> int:
    """Ask the timer loop to re-resolve the policy and re-plan the next step of open cases (set-wise; the
    loop does the work in batches). Paused cases are re-planned when they resume."""
    n = len(args)
    status = await apg.execute(
        f"UPDATE cases SET replan = true, next_at = CASE WHEN next_at IS NULL THEN NULL ELSE LEAST(next_at, ${n + 1}) END "
        f"WHERE status = 'open' AND {where}",
        *args,
        now,
    )
    return int(status.split()[-1])


async def lock_profiles(
    apg: asyncpg.Connection, tenant_id: str, customer_ids: Sequence[str]
) -> dict[str, PlanningProfile]:
    """The planning profile of each customer a customer.upserted already described, locked FOR UPDATE."""
    return {
        cid: PlanningProfile(r["time_zone"], r["country"], r["segment"], tuple(sorted(r["tags"])))
        for cid, r in (await lock_customers(apg, tenant_id, customer_ids)).items()
        if r["known"]
    }


async def count_broken_promises(apg: asyncpg.Connection, tenant_id: str, customer_id: str, count: int) -> None:
    await ensure_customer(apg, tenant_id, customer_id)
    await apg.execute(
        "UPDATE customers SET broken_promise_count = GREATEST(broken_promise_count, $3) "
        "WHERE tenant_id = $1 AND customer_id = $2",
        tenant_id, customer_id, count,
    )  # fmt: skip


async def set_block(
    apg: asyncpg.Connection, tenant_id: str, customer_id: str, reason: str | None, until: datetime | None = None
) -> None:
    await ensure_customer(apg, tenant_id, customer_id)
    await apg.execute(
        "UPDATE customers SET blocked = true, block_reason = $3, block_until = $4 "
        "WHERE tenant_id = $1 AND customer_id = $2",
        tenant_id, customer_id, reason, until,
    )  # fmt: skip


async def clear_block(apg: asyncpg.Connection, tenant_id: str, customer_id: str) -> None:
    await apg.execute(
        "UPDATE customers SET blocked = false, block_reason = NULL, block_until = NULL "
        "WHERE tenant_id = $1 AND customer_id = $2",
        tenant_id, customer_id,
    )  # fmt: skip


async def customer_block(apg: asyncpg.Connection, tenant_id: str, customer_id: str) -> asyncpg.Record | None:
    """The customer's dunning block as set (blocked, reason, until); None if the engine does not know them."""
    return await apg.fetchrow(
        "SELECT blocked, block_reason, block_until FROM customers WHERE tenant_id = $1 AND customer_id = $2",
        tenant_id, customer_id,
    )  # fmt: skip


async def claim_block_ends(apg: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Blocks whose end has come, customers' (invoice_id NULL) and invoices', locked FOR UPDATE SKIP LOCKED: two
    replicas (or loops) never end the same block, and clearing it (block_until NULL) in the same transaction makes
    the end happen exactly once."""
    customers = await apg.fetch(
        "SELECT tenant_id, customer_id, NULL::text AS invoice_id, block_until FROM customers "
        "WHERE block_until <= $1 ORDER BY block_until LIMIT $2 FOR UPDATE SKIP LOCKED",
        now, limit,
    )  # fmt: skip
    invoices = await apg.fetch(
        "SELECT tenant_id, customer_id, invoice_id, block_until FROM cases "
        "WHERE block_until <= $1 ORDER BY block_until LIMIT $2 FOR UPDATE SKIP LOCKED",
        now, limit,
    )  # fmt: skip
    return [*customers, *invoices]


async def block_end_stats(apg: asyncpg.Connection, now: datetime) -> tuple[int, float]:
    row = await apg.fetchrow(
        "SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM $1::timestamptz - min(u)), 0)::float8 AS oldest FROM "
        "(SELECT block_until AS u FROM customers WHERE block_until <= $1 "
        "UNION ALL SELECT block_until FROM cases WHERE block_until <= $1) AS due",
        now,
    )  # fmt: skip
    return int(row["n"]), float(row["oldest"])


async def revoke_channel(apg: asyncpg.Connection, tenant_id: str, customer_id: str, channel: str) -> None:
    await ensure_customer(apg, tenant_id, customer_id)
    await apg.execute(
        "UPDATE customers SET revoked = array_append(revoked, $3) WHERE tenant_id = $1 AND customer_id = $2 "
        "AND NOT ($3 = ANY(revoked))",
        tenant_id, customer_id, channel,
    )  # fmt: skip


async def record_contact_attempts(
    apg: asyncpg.Connection, tenant_id: str, customer_id: str, delivery_id: str, channel: str,
    invoice_ids: Sequence[str], at: datetime,
) -> None:  # fmt: skip
    await apg.executemany(
        "INSERT INTO contact_attempts (delivery_id, invoice_id, tenant_id, customer_id, channel, at) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        [(delivery_id, inv, tenant_id, customer_id, channel, at) for inv in (invoice_ids or [""])],
    )


class PostgresRepository:
    """The handlers' repository (service_layer.storage.DunningRepository) on PostgreSQL: the statements above,
    on the session's asyncpg connection inside the session's (the consumer's or the request's) transaction."""

    def __init__(self, session: AsyncSession, outbox: OutboxWriter, book: PolicyBook) -> None:
        self.session = session
        self.outbox = outbox
        self.book = book
        self._apg: asyncpg.Connection | None = None

    async def db(self) -> asyncpg.Connection:
        if self._apg is None:
            self._apg = await driver(self.session)
        return self._apg

    async def policies(self, tenant: str) -> dict[str, Policy]:
        return await self.book.for_tenant(await self.db(), tenant)

    async def assignments(
        self, tenant: str, customers: Iterable[str], segments: Iterable[str | None]
    ) -> dict[tuple[str, str], str]:
        return await load_assignments(await self.db(), tenant, customers, segments)

    async def debtors(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Debtor]:
        return await load_debtors(await self.db(), keys)

    async def with_late_history(self, debtors: Sequence[Debtor], tenant: str) -> list[Debtor]:
        return await with_late_history(await self.db(), debtors, tenant)

    async def cases(self, tenant: str, invoice_ids: Iterable[str]) -> dict[str, Case]:
        return await load_cases(await self.db(), tenant, invoice_ids)

    async def unclosed_cases_of(self, tenant: str, customer: str) -> list[Case]:
        return await load_where(
            await self.db(), "tenant_id = $1 AND customer_id = $2 AND status <> 'closed'", tenant, customer
        )

    async def invoice_ids_of(self, tenant: str, customer: str) -> list[str]:
        cases = await load_where(await self.db(), "tenant_id = $1 AND customer_id = $2", tenant, customer, lock=False)
        return [c.invoice_id for c in cases]

    async def cases_paused_for_stale_ledger(self, tenant: str) -> list[Case]:
        return await load_where(await self.db(), "tenant_id = $1 AND 'stale_ledger' = ANY(pause_reasons)", tenant)

    async def insert_case(self, case: Case) -> bool:
        return await insert_case(await self.db(), case)

    async def insert_cases(self, cases: Sequence[Case]) -> None:
        await insert_cases(await self.db(), cases)

    async def save_cases(self, cases: Sequence[Case]) -> None:
        await save_cases(await self.db(), cases)

    async def flag_replan(self, tenant: str, customer_ids: Sequence[str], now: datetime) -> int:
        if len(customer_ids) == 1:
            return await flag_replan(await self.db(), "tenant_id = $1 AND customer_id = $2", tenant, customer_ids[0],
                                     now=now)  # fmt: skip
        return await flag_replan(
            await self.db(), "tenant_id = $1 AND customer_id = ANY($2::text[])", tenant, list(customer_ids), now=now
        )

    async def ensure_customer(self, tenant: str, customer: str) -> None:
        await ensure_customer(await self.db(), tenant, customer)

    async def lock_profiles(self, tenant: str, customer_ids: Sequence[str]) -> dict[str, PlanningProfile]:
        return await lock_profiles(await self.db(), tenant, customer_ids)

    async def upsert_customers(self, tenant: str, customers: Sequence[CustomerUpserted]) -> None:
        await upsert_customers(await self.db(), tenant, [
            (d.customer_id, d.time_zone, d.locale, d.country, d.segment, SEP.join(sorted(d.tags)),
             json.dumps(d.consent.model_dump()))
            for d in customers
        ])  # fmt: skip

    async def mark_erased(self, tenant: str, customer: str, erased_at: datetime, reason: str) -> bool:
        return await mark_erased(await self.db(), tenant, customer, erased_at, reason)

    async def count_broken_promises(self, tenant: str, customer: str, count: int) -> None:
        await count_broken_promises(await self.db(), tenant, customer, count)

    async def set_block(self, tenant: str, customer: str, reason: str | None, until: datetime | None = None) -> None:
        await set_block(await self.db(), tenant, customer, reason, until)

    async def clear_block(self, tenant: str, customer: str) -> None:
        await clear_block(await self.db(), tenant, customer)

    async def revoke_channel(self, tenant: str, customer: str, channel: str) -> None:
        await revoke_channel(await self.db(), tenant, customer, channel)

    async def record_contact_attempts(
        self, tenant: str, customer: str, delivery_id: str, channel: str, invoice_ids: Sequence[str], at: datetime
    ) -> None:
        await record_contact_attempts(await self.db(), tenant, customer, delivery_id, channel, invoice_ids, at)

    async def mark_reminded(
        self, tenant: str, invoice_ids: Sequence[str], at: datetime, now: datetime
    ) -> list[Reminded]:
        rows = await mark_reminded(await self.db(), tenant, list(invoice_ids), at, now)
        return [Reminded(r["customer_id"], r["invoice_id"], r["next_step"]) for r in rows]

    async def write_notes(self, cases: Iterable[Case], at: datetime) -> int:
        return await write_notes(await self.db(), cases, at)

    async def write_customer_note(
        self, tenant: str, customer: str, at: datetime, kind: str, reason: str, **detail: Any
    ) -> None:
        await write_customer_note(await self.db(), tenant, customer, at, kind, reason, **detail)

    async def write_invoice_note(
        self, tenant: str, customer: str, invoice_id: str, at: datetime, kind: str, reason: str,
        step: str | None = None, **detail: Any,
    ) -> None:  # fmt: skip
        await write_invoice_note(await self.db(), tenant, customer, invoice_id, at, kind, reason, step, **detail)

    async def step_name_of(self, tenant: str, invoice_id: str, step_id: str) -> str | None:
        return await step_name_of(await self.db(), tenant, invoice_id, step_id)

    async def redact_timeline(self, tenant: str, customer: str) -> int:
        return await redact_timeline(await self.db(), tenant, customer)

    async def record_sync(
        self, tenant: str, connector: str, scheduled: bool, success: datetime | None, reported: datetime,
        error: str | None,
    ) -> None:  # fmt: skip
        await record_sync(await self.db(), tenant, connector, scheduled, success, reported, error)

    async def freshness_facts(
        self, tenants: Iterable[str]
    ) -> tuple[dict[str, list[SourceFreshness]], dict[str, timedelta]]:
        return await freshness_facts(await self.db(), tenants)

    async def set_import_cadence(self, tenant: str, hours: int | None, now: datetime) -> None:
        await set_import_cadence(await self.db(), tenant, hours, now)

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        await self.outbox.add(self.session, events)

    async def forget_published_events(self, tenant: str, customer: str) -> None:
        await forget_published_events(self.session, orm.outbox, tenant, customer)
