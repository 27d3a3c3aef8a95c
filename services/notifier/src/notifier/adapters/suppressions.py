"""The suppression list in SQL: addresses and numbers never to be contacted again, per tenant and kind
(`email`, `phone`), with the reason they were added."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.adapters import orm


async def insert_suppression(
    session: AsyncSession,
    tenant_id: str,
    kind: str,
    address: str,
    reason: str,
    customer_id: str | None,
    detail: str | None,
    now: datetime,
) -> bool:
    """True when the address was not suppressed yet (the first reason stays)."""
    inserted = (
        await session.execute(
            insert(orm.suppressions)
            .values(
                tenant_id=tenant_id,
                kind=kind,
                address=address,
                reason=reason,
                customer_id=customer_id,
                detail=detail,
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(orm.suppressions.c.address)
        )
    ).first()
    return inserted is not None


async def suppression_reasons(
    session: AsyncSession, keys: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], str]:
    """(tenant, kind, address) -> reason, for the keys that are on the list."""
    s = orm.suppressions.c
    result = await session.execute(
        select(s.tenant_id, s.kind, s.address, s.reason).where(tuple_(s.tenant_id, s.kind, s.address).in_(sorted(keys)))
    )
    return {(t, k, a): r for t, k, a, r in result.all()}
