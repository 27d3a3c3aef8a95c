"""Has the ledger projection applied everything the broker held a moment ago? (DESIGN invariant 1)

A payment published before the send must stop the send even when the notifier's ledger consumer has not
applied it yet. Before a batch is claimed the dispatcher snapshots the end offsets of dunning.ledger.v1,
then waits (briefly) until the projection's applied positions - written in the projection's own
transactions - reach them. A partition whose last records were dead-lettered never shows them as applied,
so the consumer group's committed offsets (committed after the dead-lettering) count too.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_events.kafka_security import PLAINTEXT, KafkaSecurity
from notifier.adapters import orm

log = logging.getLogger("notifier.watermark")


class LedgerWatermark:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        group: str,
        sessions: async_sessionmaker[AsyncSession],
        wait_seconds: float = 5.0,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.security = security
        self.topic = topic
        self.group = group
        self.sessions = sessions
        self.wait_seconds = wait_seconds
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _offsets_client(self) -> AIOKafkaConsumer:
        async with self._lock:
            if self._consumer is None:
                # In the ledger consumer's group but never subscribed: it never joins (no rebalance), yet it
                # can read the group's committed offsets.
                consumer = AIOKafkaConsumer(
                    **self.security.client_kwargs(),
                    bootstrap_servers=self.bootstrap_servers,
                    group_id=self.group,
                    enable_auto_commit=False,
                    client_id="notifier-ledger-watermark",
                    metadata_max_age_ms=5_000,
                    request_timeout_ms=10_000,
                )
                try:
                    await consumer.start()
                except BaseException:
                    await consumer.stop()
                    raise
                self._consumer = consumer
            return self._consumer

    async def end_offsets(self) -> dict[int, int]:
        consumer = await self._offsets_client()
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await consumer.topics()  # fetches metadata
                partitions = consumer.partitions_for_topic(self.topic) or set()
            ends = await consumer.end_offsets([TopicPartition(self.topic, p) for p in sorted(partitions)])
        except Exception:
            await self.close()  # reconnect next time
            raise
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    async def applied_positions(self) -> dict[int, int]:
        p = orm.ledger_positions.c
        async with self.sessions() as session:
            rows = (await session.execute(select(p.partition, p.next_offset).where(p.topic == self.topic))).all()
        return {int(r[0]): int(r[1]) for r in rows}

    async def committed_offsets(self, partitions: list[int]) -> dict[int, int]:
        consumer = await self._offsets_client()
        out: dict[int, int] = {}
        for p in partitions:
            committed = await consumer.committed(TopicPartition(self.topic, p))
            if committed is not None:
                out[p] = int(committed)
        return out

    @staticmethod
    def behind(ends: dict[int, int], applied: dict[int, int]) -> dict[int, int]:
        return {p: end - applied.get(p, 0) for p, end in ends.items() if end > applied.get(p, 0)}

    async def caught_up(self) -> tuple[bool, dict[int, int]]:
        """(True, {}) once the projection holds every ledger event on the broker at the time of the call;
        (False, {partition: records behind}) if it did not get there within `wait_seconds`."""
        ends = await self.end_offsets()
        deadline = time.monotonic() + self.wait_seconds
        lagging = self.behind(ends, await self.applied_positions())
        while lagging and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            lagging = self.behind(ends, await self.applied_positions())
        if lagging:
            committed = await self.committed_offsets(sorted(lagging))
            applied = await self.applied_positions()
            merged = {p: max(applied.get(p, 0), committed.get(p, 0)) for p in set(applied) | set(committed)}
            lagging = self.behind(ends, merged)
        return (not lagging, lagging)

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
