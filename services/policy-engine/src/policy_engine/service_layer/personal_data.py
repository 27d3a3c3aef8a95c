"""What the policy engine holds about one customer (GDPR Art. 15): its customer projection, the dunning cases
of its invoices, the timeline of every decision about it, its contact attempts, the calls collectors logged with it
and its dunning blocks."""

from __future__ import annotations

from typing import Any

from dunning_kit.personal_data import PersonalData, record
from policy_engine.adapters import repository as repo

SECTIONS = ("customer", "cases", "timeline", "contact_attempts", "calls", "blocks")


async def collect(runtime: Any, tenant_id: str, customer_id: str) -> PersonalData:
    async with runtime.sessions() as session:
        apg = await repo.driver(session)
        customer = await apg.fetch(
            "SELECT customer_id, known, time_zone, locale, country, segment, tags, consent::text AS consent, "
            "revoked, blocked, block_reason, broken_promise_count, erased_at, erasure_reason "
            "FROM customers WHERE tenant_id = $1 AND customer_id = $2",
            tenant_id, customer_id,
        )  # fmt: skip
        cases = await apg.fetch(
            "SELECT invoice_id, number, currency, total_minor, balance_minor, due_date, status, pause_reasons, "
            "block_reason, promise_ids, plan_id, policy_id, policy_version, next_step, next_at, done_steps, "
            "last_sent_at, reminded_at, closed_reason FROM cases WHERE tenant_id = $1 AND customer_id = $2 "
            "ORDER BY invoice_id",
            tenant_id, customer_id,
        )  # fmt: skip
        timeline = await apg.fetch(
            "SELECT id, invoice_id, at, kind, step_name, reason, detail::text AS detail FROM timeline "
            "WHERE tenant_id = $1 AND customer_id = $2 ORDER BY id",
            tenant_id, customer_id,
        )  # fmt: skip
        contacts = await apg.fetch(
            "SELECT delivery_id, invoice_id, channel, at FROM contact_attempts "
            "WHERE tenant_id = $1 AND customer_id = $2 ORDER BY at, delivery_id, invoice_id",
            tenant_id, customer_id,
        )  # fmt: skip
        calls = await apg.fetch(
            "SELECT call_id, outcome, at, invoice_ids, note, logged_by, logged_at FROM calls "
            "WHERE tenant_id = $1 AND customer_id = $2 ORDER BY at, call_id",
            tenant_id, customer_id,
        )  # fmt: skip
    blocks: list[dict[str, Any]] = [
        {"scope": "customer", "invoice_id": None, "reason": c["block_reason"]} for c in customer if c["blocked"]
    ] + [
        {"scope": "invoice", "invoice_id": c["invoice_id"], "reason": c["block_reason"]}
        for c in cases
        if "invoice_block" in c["pause_reasons"]
    ]
    return PersonalData(
        erased=bool(customer) and customer[0]["erased_at"] is not None,
        sections={
            "customer": [record(r, json_columns=["consent"]) for r in customer],
            "cases": [record(r) for r in cases],
            "timeline": [record(r, json_columns=["detail"]) for r in timeline],
            "contact_attempts": [record(r) for r in contacts],
            "calls": [record(r) for r in calls],
            "blocks": blocks,
        },
    )
