"""Read side: promises, plans and a customer's promise record as the API shows them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import any_, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.money import from_minor
from dunning_kit.pages import CursorCodec, Page
from promise_tracker.adapters import orm

PROMISES = CursorCodec("promises.promises")
PLANS = CursorCodec("promises.plans")


def promise_view(row: Any) -> dict[str, Any]:
    cur = row.currency
    shortfall = row.amount_minor - max(row.received_minor, 0) if row.status in ("broken", "partially_kept") else 0
    return {
        "id": row.promise_id,
        "customer_id": row.customer_id,
        "invoice_ids": list(row.invoice_ids),
        "amount": str(from_minor(row.amount_minor, cur)),
        "currency": cur,
        "received": str(from_minor(row.received_minor, cur)),
        "shortfall": str(from_minor(shortfall, cur)),
        "promised_date": row.promised_date.isoformat(),
        "deadline": row.deadline.isoformat(),
        "recorded_by": row.recorded_by,
        "note": row.note,
        "status": row.status,
        "plan_id": row.plan_id,
        "instalment_index": row.instalment_index,
        "created_at": row.created_at.isoformat(),
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "reason": row.reason,
    }


def plan_view(row: Any, instalments: list[Any]) -> dict[str, Any]:
    cur = row.currency
    return {
        "id": row.plan_id,
        "customer_id": row.customer_id,
        "invoice_ids": list(row.invoice_ids),
        "currency": cur,
        "total": str(from_minor(row.total_minor, cur)),
        "instalment_count": row.instalment_count,
        "interval": row.interval,
        "recorded_by": row.recorded_by,
        "note": row.note,
        "on_missed": row.on_missed,
        "max_strikes": row.max_strikes,
        "strikes": row.strikes,
        "status": row.status,
        "reason": row.reason,
        "created_at": row.created_at.isoformat(),
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "instalments": [promise_view(i) for i in instalments],
    }


async def get_promise(session: AsyncSession, tenant_id: str, promise_id: str) -> dict[str, Any] | None:
    p = orm.promises.c
    row = (
        await session.execute(select(orm.promises).where(p.tenant_id == tenant_id, p.promise_id == promise_id))
    ).first()
    return None if row is None else promise_view(row)


async def list_promises(
    session: AsyncSession,
    tenant_id: str,
    *,
    customer_id: str | None,
    invoice_id: str | None,
    status: str | None,
    plan_id: str | None,
    limit: int,
    cursor: str | None,
) -> Page[dict[str, Any]]:
    """Oldest first, keyset-paginated on (created_at, promise_id) (index ix_promises_created)."""
    p = orm.promises.c
    q = select(orm.promises).where(p.tenant_id == tenant_id)
    if customer_id:
        q = q.where(p.customer_id == customer_id)
    if invoice_id:
        q = q.where(literal(invoice_id) == any_(p.invoice_ids))
    if status:
        q = q.where(p.status == status)
    if plan_id:
        q = q.where(p.plan_id == plan_id)
    if (after := PROMISES.decode(cursor, 2)) is not None:
        q = q.where(tuple_(p.created_at, p.promise_id) > tuple_(literal(after[0]), literal(after[1])))
    rows = (await session.execute(q.order_by(p.created_at, p.promise_id).limit(limit + 1))).all()
    return PROMISES.page(rows, limit, lambda r: (r.created_at, r.promise_id), promise_view)


async def get_plan(session: AsyncSession, tenant_id: str, plan_id: str) -> dict[str, Any] | None:
    pl = orm.plans.c
    row = (await session.execute(select(orm.plans).where(pl.tenant_id == tenant_id, pl.plan_id == plan_id))).first()
    if row is None:
        return None
    p = orm.promises.c
    instalments = (
        await session.execute(
            select(orm.promises).where(p.tenant_id == tenant_id, p.plan_id == plan_id).order_by(p.instalment_index)
        )
    ).all()
    return plan_view(row, list(instalments))


async def list_plans(
    session: AsyncSession,
    tenant_id: str,
    *,
    customer_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page[dict[str, Any]]:
    """Oldest first, keyset-paginated on (created_at, plan_id) (index ix_plans_created), each with its instalments."""
    pl = orm.plans.c
    q = select(pl.plan_id, pl.created_at).where(pl.tenant_id == tenant_id)
    if customer_id:
        q = q.where(pl.customer_id == customer_id)
    if status:
        q = q.where(pl.status == status)
    if (after := PLANS.decode(cursor, 2)) is not None:
        q = q.where(tuple_(pl.created_at, pl.plan_id) > tuple_(literal(after[0]), literal(after[1])))
    keys = (await session.execute(q.order_by(pl.created_at, pl.plan_id).limit(limit + 1))).all()
    page = PLANS.page(keys, limit, lambda k: (k.created_at, k.plan_id), lambda k: k.plan_id)
    plans = [plan for plan_id in page.items if (plan := await get_plan(session, tenant_id, plan_id)) is not None]
    return Page[dict[str, Any]](items=plans, next_cursor=page.next_cursor)


async def promise_record(session: AsyncSession, tenant_id: str, customer_id: str) -> dict[str, Any] | None:
    cu = orm.customers.c
    row = (
        await session.execute(select(orm.customers).where(cu.tenant_id == tenant_id, cu.customer_id == customer_id))
    ).first()
    p = orm.promises.c
    active = await session.scalar(
        select(func.count()).where(p.tenant_id == tenant_id, p.customer_id == customer_id, p.status == "active")
    )
    if row is None and not active:
        return None
    return {
        "customer_id": customer_id,
        "time_zone": row.time_zone if row else "UTC",
        "broken_promise_count": row.broken_promise_count if row else 0,
        "kept_promise_count": row.kept_promise_count if row else 0,
        "active_promises": int(active or 0),
    }
