"""Per-tenant promise rules: stored in this service (admin API), falling back to the service's defaults.

The policy engine owns dunning policies, but promise-tracker must not read its tables; the rules a
promise needs at the moment it is recorded (horizon, grace, plan behaviour) therefore live here.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from promise_tracker.adapters import orm
from promise_tracker.domain.rules import PromiseRules


async def load_rules(session: AsyncSession, tenant_id: str, defaults: PromiseRules) -> PromiseRules:
    row = (await session.execute(select(orm.promise_rules).where(orm.promise_rules.c.tenant_id == tenant_id))).first()
    if row is None:
        return defaults
    return PromiseRules(
        max_horizon_days=row.max_horizon_days,
        grace_days=row.grace_days,
        plan_on_missed=row.plan_on_missed,
        plan_max_strikes=row.plan_max_strikes,
        plan_max_instalments=row.plan_max_instalments,
    )


async def save_rules(session: AsyncSession, tenant_id: str, rules: PromiseRules, now: datetime) -> None:
    values = {**asdict(rules), "updated_at": now}
    stmt = insert(orm.promise_rules).values(tenant_id=tenant_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=[orm.promise_rules.c.tenant_id], set_=values))
