"""The dunning facts of a batch (steps, deliveries, consent, contact holds, promises, plans) applied set-wise,
keyed by their natural keys so a second arrival (a redelivery, a backfill overlapping the stream) changes nothing:
a row is created once, and an outcome only ever moves forward (a delivery's first instant of each kind wins, a
promise or plan leaves `open`/`active` once)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from insights.adapters.rows import as_list, columns_of, unnest
from insights.domain.facts import DELIVERY_INSTANTS, Facts

STEP_COLUMNS = [
    ("tenant_id", "varchar"), ("step_id", "varchar"), ("customer_id", "varchar"), ("policy_id", "varchar"),
    ("policy_version", "integer"), ("step_index", "integer"), ("step_name", "varchar"), ("tone", "varchar"),
    ("currency", "varchar"), ("amount_due", "numeric"), ("channels", "varchar"), ("due_at", "timestamptz"),
    ("sent_on", "date"), ("next_step_name", "varchar"), ("next_step_at", "timestamptz"),
]  # fmt: skip
INSERT_STEPS = text(
    "INSERT INTO steps (tenant_id, step_id, customer_id, policy_id, policy_version, step_index, step_name, tone, "
    "currency, amount_due, channels, due_at, sent_on, next_step_name, next_step_at) "
    "SELECT r.tenant_id, r.step_id, r.customer_id, r.policy_id, r.policy_version, r.step_index, r.step_name, "
    f"r.tone, r.currency, r.amount_due, {as_list('r.channels')}, r.due_at, r.sent_on, r.next_step_name, "
    "r.next_step_at "
    f"FROM {unnest(STEP_COLUMNS)} ON CONFLICT DO NOTHING"
)
STEP_INVOICE_COLUMNS = [
    ("tenant_id", "varchar"),
    ("step_id", "varchar"),
    ("invoice_id", "varchar"),
    ("balance", "numeric"),
]
INSERT_STEP_INVOICES = text(
    f"INSERT INTO step_invoices (tenant_id, step_id, invoice_id, balance) SELECT * FROM {unnest(STEP_INVOICE_COLUMNS)} "
    "ON CONFLICT DO NOTHING"
)
LAST_STEP_COLUMNS = [
    ("tenant_id", "varchar"), ("invoice_id", "varchar"), ("step_id", "varchar"), ("step_name", "varchar"),
    ("due_at", "timestamptz"), ("next_step_name", "varchar"), ("next_step_at", "timestamptz"),
]  # fmt: skip
# Only a newer step moves an invoice's last and next step (a late redelivery of an older one does not).
LAST_STEPS = text(
    "UPDATE invoices i SET last_step_id = r.step_id, last_step_name = r.step_name, last_step_at = r.due_at, "
    "next_step_name = r.next_step_name, next_step_at = r.next_step_at "
    f"FROM {unnest(LAST_STEP_COLUMNS)} WHERE i.tenant_id = r.tenant_id AND i.invoice_id = r.invoice_id "
    "AND (i.last_step_at IS NULL OR i.last_step_at < r.due_at "
    "OR (i.last_step_at = r.due_at AND i.last_step_id < r.step_id))"
)
CANCEL_COLUMNS = [("tenant_id", "varchar"), ("step_id", "varchar"), ("cancelled_at", "timestamptz")]
CANCEL_STEPS = text(
    f"UPDATE steps s SET cancelled_at = r.cancelled_at FROM {unnest(CANCEL_COLUMNS)} "
    "WHERE s.tenant_id = r.tenant_id AND s.step_id = r.step_id AND s.cancelled_at IS NULL"
)
DELIVERY_COLUMNS = [
    ("tenant_id", "varchar"), ("delivery_id", "varchar"), ("step_id", "varchar"), ("customer_id", "varchar"),
    ("channel", "varchar"), *((name, "timestamptz") for name in DELIVERY_INSTANTS),
]  # fmt: skip
UPSERT_DELIVERIES = text(
    f"INSERT INTO deliveries ({', '.join(n for n, _ in DELIVERY_COLUMNS)}) SELECT * FROM {unnest(DELIVERY_COLUMNS)} "
    "ON CONFLICT (tenant_id, delivery_id) DO UPDATE SET "
    + ", ".join(f"{n} = coalesce(deliveries.{n}, excluded.{n})" for n in DELIVERY_INSTANTS)
    + " WHERE "
    + " OR ".join(f"(deliveries.{n} IS NULL AND excluded.{n} IS NOT NULL)" for n in DELIVERY_INSTANTS)
)
CONSENT_COLUMNS = [
    ("tenant_id", "varchar"), ("customer_id", "varchar"), ("channel", "varchar"), ("revoked_at", "timestamptz"),
    ("reason", "varchar"),
]  # fmt: skip
INSERT_CONSENT = text(f"INSERT INTO consent_revocations SELECT * FROM {unnest(CONSENT_COLUMNS)} ON CONFLICT DO NOTHING")
HOLD_COLUMNS = [
    ("tenant_id", "varchar"), ("hold_key", "varchar"), ("channel", "varchar"), ("customer_id", "varchar"), ("held_on", "date"),
    ("rule", "varchar"), ("reason", "varchar"),
]  # fmt: skip
INSERT_HOLDS = text(
    f"INSERT INTO contact_holds ({', '.join(n for n, _ in HOLD_COLUMNS)}) SELECT * FROM {unnest(HOLD_COLUMNS)} "
    "ON CONFLICT DO NOTHING"
)
PROMISE_COLUMNS = [
    ("tenant_id", "varchar"), ("promise_id", "varchar"), ("customer_id", "varchar"), ("plan_id", "varchar"),
    ("invoice_ids", "varchar"), ("currency", "varchar"), ("amount", "numeric"), ("promised_date", "date"),
    ("recorded_by", "varchar"), ("created_at", "timestamptz"), ("status", "varchar"),
]  # fmt: skip
INSERT_PROMISES = text(
    "INSERT INTO promises (tenant_id, promise_id, customer_id, plan_id, invoice_ids, currency, amount, "
    "promised_date, recorded_by, created_at, status) "
    f"SELECT r.tenant_id, r.promise_id, r.customer_id, r.plan_id, {as_list('r.invoice_ids')}, r.currency, "
    f"r.amount, r.promised_date, r.recorded_by, r.created_at, r.status FROM {unnest(PROMISE_COLUMNS)} "
    "ON CONFLICT DO NOTHING"  # a promise that already has its outcome never goes back to open
)
PROMISE_OUTCOME_COLUMNS = [
    ("tenant_id", "varchar"), ("promise_id", "varchar"), ("status", "varchar"), ("received", "numeric"),
    ("partially_kept", "boolean"), ("ended_at", "timestamptz"),
]  # fmt: skip
END_PROMISES = text(
    "UPDATE promises p SET status = r.status, received = r.received, partially_kept = r.partially_kept, "
    f"ended_at = r.ended_at FROM {unnest(PROMISE_OUTCOME_COLUMNS)} "
    "WHERE p.tenant_id = r.tenant_id AND p.promise_id = r.promise_id AND p.status = 'open'"
)
PLAN_COLUMNS = [
    ("tenant_id", "varchar"), ("plan_id", "varchar"), ("customer_id", "varchar"), ("invoice_ids", "varchar"),
    ("currency", "varchar"), ("total", "numeric"), ("instalments", "integer"), ("created_at", "timestamptz"),
    ("status", "varchar"),
]  # fmt: skip
INSERT_PLANS = text(
    "INSERT INTO plans (tenant_id, plan_id, customer_id, invoice_ids, currency, total, instalments, created_at, "
    f"status) SELECT r.tenant_id, r.plan_id, r.customer_id, {as_list('r.invoice_ids')}, r.currency, r.total, "
    f"r.instalments, r.created_at, r.status FROM {unnest(PLAN_COLUMNS)} ON CONFLICT DO NOTHING"
)
PLAN_OUTCOME_COLUMNS = [
    ("tenant_id", "varchar"),
    ("plan_id", "varchar"),
    ("status", "varchar"),
    ("ended_at", "timestamptz"),
]
END_PLANS = text(
    f"UPDATE plans p SET status = r.status, ended_at = r.ended_at FROM {unnest(PLAN_OUTCOME_COLUMNS)} "
    "WHERE p.tenant_id = r.tenant_id AND p.plan_id = r.plan_id AND p.status = 'active'"
)


def _first(rows: Iterable[dict[str, Any]], *key: str) -> list[dict[str, Any]]:
    """The first row per key: within a batch, as across batches, the first fact wins."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        out.setdefault(tuple(row[n] for n in key), row)
    return list(out.values())


def merged_deliveries(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per delivery, each instant from the first event that carried it."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        held = out.get((row["tenant_id"], row["delivery_id"]))
        if held is None:
            out[(row["tenant_id"], row["delivery_id"])] = dict(row)
            continue
        for name in DELIVERY_INSTANTS:
            if held.get(name) is None and row.get(name) is not None:
                held[name] = row[name]
    return list(out.values())


def latest_steps(facts: Facts) -> list[dict[str, Any]]:
    """Per invoice, the newest step of the batch about it."""
    steps = {(s["tenant_id"], s["step_id"]): s for s in facts.steps}
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for si in facts.step_invoices:
        step = steps[(si["tenant_id"], si["step_id"])]
        key = (si["tenant_id"], si["invoice_id"])
        held = best.get(key)
        if held is None or (step["due_at"], step["step_id"]) > (held["due_at"], held["step_id"]):
            best[key] = {**step, "invoice_id": si["invoice_id"]}
    return list(best.values())


async def apply_activity(session: AsyncSession, facts: Facts) -> None:
    if facts.steps:
        await session.execute(INSERT_STEPS, columns_of(_first(facts.steps, "tenant_id", "step_id"), STEP_COLUMNS))
    if facts.step_invoices:
        await session.execute(INSERT_STEP_INVOICES, columns_of(facts.step_invoices, STEP_INVOICE_COLUMNS))
        await session.execute(LAST_STEPS, columns_of(latest_steps(facts), LAST_STEP_COLUMNS))
    if facts.step_cancellations:
        rows = _first(facts.step_cancellations, "tenant_id", "step_id")
        await session.execute(CANCEL_STEPS, columns_of(rows, CANCEL_COLUMNS))
    if facts.deliveries:
        await session.execute(UPSERT_DELIVERIES, columns_of(merged_deliveries(facts.deliveries), DELIVERY_COLUMNS))
    if facts.consent_revocations:
        await session.execute(INSERT_CONSENT, columns_of(facts.consent_revocations, CONSENT_COLUMNS))
    if facts.contact_holds:
        await session.execute(INSERT_HOLDS, columns_of(facts.contact_holds, HOLD_COLUMNS))
    if facts.promises:
        rows = _first(facts.promises, "tenant_id", "promise_id")
        await session.execute(INSERT_PROMISES, columns_of(rows, PROMISE_COLUMNS))
    if facts.promise_outcomes:
        rows = _first(facts.promise_outcomes, "tenant_id", "promise_id")
        await session.execute(END_PROMISES, columns_of(rows, PROMISE_OUTCOME_COLUMNS))
    if facts.plans:
        await session.execute(INSERT_PLANS, columns_of(_first(facts.plans, "tenant_id", "plan_id"), PLAN_COLUMNS))
    if facts.plan_outcomes:
        rows = _first(facts.plan_outcomes, "tenant_id", "plan_id")
        await session.execute(END_PLANS, columns_of(rows, PLAN_OUTCOME_COLUMNS))
