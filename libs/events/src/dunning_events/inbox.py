"""Inbox: the ids of events a consumer group applied, written in the same transaction as the effect."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession


class Inbox:
    def __init__(self, table: Table, consumer_group: str) -> None:
        self.table = table
        self.consumer_group = consumer_group
        self._claim = text(
            f"INSERT INTO {table.name} (consumer_group, event_id) "
            "SELECT :group, unnest(:ids) ON CONFLICT DO NOTHING RETURNING event_id"
        ).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))

    async def claim(self, session: AsyncSession, event_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Record the ids; return those not seen before. A rollback un-claims them with the effect.

        Sorted, so two transactions claiming overlapping ids (a group and its priority lane) take the rows' locks
        in the same order and never deadlock on them."""
        ids = sorted(set(event_ids))
        if not ids:
            return set()
        result = await session.execute(self._claim, {"group": self.consumer_group, "ids": ids})
        return {row[0] for row in result}


async def prune_inbox(engine: AsyncEngine, table: Table, older_than: timedelta, chunk: int = 10_000) -> int:
    """Forget applied event ids older than the retention; returns how many were removed.

    An id only has to outlive the longest a redelivery can come after the first delivery: a relay
    re-publishing a batch, a consumer restarting from its last committed offset, at worst a group replaying
    its topic from the start, so the retention is the topics' retention plus a margin, not forever.
    Short chunked transactions, so the consumers' inserts never wait behind one long delete.
    """
    removed = 0
    while True:
        async with engine.begin() as conn:
            result: Any = await conn.execute(
                text(
                    f"DELETE FROM {table.name} WHERE ctid = ANY(ARRAY("
                    f"SELECT ctid FROM {table.name} WHERE processed_at < now() - make_interval(secs => :age) "
                    "LIMIT :chunk))"
                ),
                {"age": older_than.total_seconds(), "chunk": chunk},
            )
        deleted = int(result.rowcount)
        removed += deleted
        if deleted < chunk:
            return removed
