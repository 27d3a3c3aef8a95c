"""Test support for ledger-sync and its neighbours: read what the service put on the broker."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from dunning_events.codec import decode_record
from dunning_events.envelope import Envelope, EventData
from dunning_events.topics import LEDGER
from dunning_kit.testing import RunningService, wait_until_quiet


async def read_topic(bootstrap_servers: str, topic: str = LEDGER) -> list[Envelope[EventData]]:
    """Every event on the topic right now, in partition order (no consumer group, nothing committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, client_id=f"reader-{uuid.uuid4().hex[:6]}"
    )
    await consumer.start()
    try:
        await consumer.topics()  # refreshes metadata
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Envelope[EventData]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for records in batch.values():
                out.extend(decode_record(r) for r in records if r.value is not None)
        return out
    finally:
        await consumer.stop()


@dataclass
class LedgerHarness:
    service: RunningService
    bootstrap_servers: str

    def client(self, key: str | None = "acme-api-key") -> httpx.AsyncClient:
        return self.service.client(key)

    async def events(self, tenant: str | None = "acme") -> list[Envelope[EventData]]:
        """The ledger events published so far (waits until the outbox is drained)."""
        await wait_until_quiet([self.service.runtime])
        evs = await read_topic(self.bootstrap_servers)
        return [e for e in evs if tenant is None or e.tenant_id == tenant]

    async def event_types(self, tenant: str | None = "acme") -> list[str]:
        return [e.type for e in await self.events(tenant)]

    async def post(self, path: str, body: Any, key: str | None = "acme-api-key", **kw: Any) -> httpx.Response:
        async with self.client(key) as api:
            return await api.post(path, json=body, **kw)

    async def get(self, path: str, key: str | None = "acme-api-key", **kw: Any) -> httpx.Response:
        async with self.client(key) as api:
            return await api.get(path, **kw)
