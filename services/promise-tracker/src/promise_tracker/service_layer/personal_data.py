"""What the promise tracker holds about one customer (GDPR Art. 15): its customer projection, its promises and
payment plans (notes, who recorded them, outcomes), the money matched to them and its invoices."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dunning_kit.personal_data import PersonalData, records
from promise_tracker.adapters import orm

SECTIONS = ("customer", "promises", "plans", "payments_matched", "invoices")


async def collect(runtime: Any, tenant_id: str, customer_id: str) -> PersonalData:
    cu, p, pl, r, inv = orm.customers.c, orm.promises.c, orm.plans.c, orm.receipts.c, orm.invoices.c
    async with runtime.sessions() as session:
        customer = await records(
            session,
            select(cu.customer_id, cu.name, cu.time_zone, cu.locale, cu.broken_promise_count, cu.kept_promise_count,
                   cu.erased_at)
            .where(cu.tenant_id == tenant_id, cu.customer_id == customer_id),
        )  # fmt: skip
        promises = await records(
            session,
            select(p.promise_id, p.invoice_ids, p.currency, p.amount_minor, p.received_minor, p.promised_date,
                   p.deadline, p.recorded_by, p.note, p.plan_id, p.instalment_index, p.status, p.created_at,
                   p.resolved_at, p.reason)
            .where(p.tenant_id == tenant_id, p.customer_id == customer_id)
            .order_by(p.created_at, p.promise_id),
        )  # fmt: skip
        plans = await records(
            session,
            select(pl.plan_id, pl.invoice_ids, pl.currency, pl.total_minor, pl.instalment_count, pl.interval,
                   pl.recorded_by, pl.note, pl.strikes, pl.status, pl.created_at, pl.resolved_at, pl.reason)
            .where(pl.tenant_id == tenant_id, pl.customer_id == customer_id)
            .order_by(pl.created_at, pl.plan_id),
        )  # fmt: skip
        matched = await records(
            session,
            select(r.promise_id, r.source_kind, r.source_id, r.invoice_id, r.amount_minor, r.occurred_at)
            .where(r.tenant_id == tenant_id, r.promise_id.in_([row["promise_id"] for row in promises]))
            .order_by(r.id),
        )
        invoices = await records(
            session,
            select(inv.invoice_id, inv.number, inv.currency, inv.total_minor, inv.balance_minor, inv.due_date,
                   inv.status, inv.settled_at)
            .where(inv.tenant_id == tenant_id, inv.customer_id == customer_id)
            .order_by(inv.invoice_id),
        )  # fmt: skip
    return PersonalData(
        erased=bool(customer) and customer[0]["erased_at"] is not None,
        sections={
            "customer": customer,
            "promises": promises,
            "plans": plans,
            "payments_matched": matched,
            "invoices": invoices,
        },
    )
