"""The suppression list in SQL: addresses and numbers never to be contacted again, per tenant and kind
(`email`, `phone`), with the reason they were added."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.adapters import orm


class Suppression(NamedTuple):
    tenant_id: str
    kind: str  # email | phone
    address: str
    reason: str
    customer_id: str | None  # whose address it was, when known
    detail: str | None  # the provider's words, a staff member's note


async def insert_suppression(session: AsyncSession, entry: Suppression, now: datetime) -> bool:
    """True when the address was not suppressed yet (the first reason stays)."""
    inserted = (
        await session.execute(
            insert(orm.suppressions)
            .values(**entry._asdict(), created_at=now)
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
