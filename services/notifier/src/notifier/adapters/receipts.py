"""Provider receipts as recorded: one row per provider event id, so a callback is applied once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.adapters import orm


async def claim_receipt(
    session: AsyncSession,
    provider: str,
    event_id: str,
    delivery_id: Any,
    status: str,
    now: datetime,
    payload: Mapping[str, Any],
) -> bool:
    """True the first time this provider event is seen."""
    row = (
        await session.execute(
            insert(orm.receipts)
            .values(
                provider=provider,
                provider_event_id=event_id[:300],
                delivery_id=delivery_id,
                status=status,
                received_at=now,
                payload=dict(payload),
            )
            .on_conflict_do_nothing()
            .returning(orm.receipts.c.provider_event_id)
        )
    ).first()
    return row is not None
