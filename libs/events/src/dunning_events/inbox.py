"""Inbox: the ids of events a consumer group applied, written in the same transaction as the effect."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Table, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession


class Inbox:
    def __init__(self, table: Table, consumer_group: str) -> None:
        self.table = table
        self.consumer_group = consumer_group
        self._claim = text(
            f"INSERT INTO {table.name} (consumer_group, event_id) "
            "SELECT :group, unnest(:ids) ON CONFLICT DO NOTHING RETURNING event_id"
        ).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))

    async def claim(self, session: AsyncSession, event_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Record the ids; return those not seen before. A rollback un-claims them with the effect."""
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return set()
        result = await session.execute(self._claim, {"group": self.consumer_group, "ids": ids})
        return {row[0] for row in result}
