"""Test support for ledger-sync and its neighbours: the service on real sockets and what it put on the broker
(read with the kit's topic reader)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from dunning_events.envelope import Envelope, EventData
from dunning_events.topics import LEDGER
from dunning_kit.event_testing import topic_events
from dunning_kit.testing import RunningService, wait_until_quiet


@dataclass
class LedgerHarness:
    service: RunningService
    bootstrap_servers: str

    def client(self, key: str | None = "acme-api-key") -> httpx.AsyncClient:
        return self.service.client(key)

    async def events(self, tenant: str | None = "acme") -> list[Envelope[EventData]]:
        """The ledger events published so far (waits until the outbox is drained)."""
        await wait_until_quiet([self.service.runtime])
        evs = await topic_events(self.bootstrap_servers, LEDGER)
        return [e for e in evs if tenant is None or e.tenant_id == tenant]

    async def event_types(self, tenant: str | None = "acme") -> list[str]:
        return [e.type for e in await self.events(tenant)]

    async def post(self, path: str, body: Any, key: str | None = "acme-api-key", **kw: Any) -> httpx.Response:
        async with self.client(key) as api:
            return await api.post(path, json=body, **kw)

    async def get(self, path: str, key: str | None = "acme-api-key", **kw: Any) -> httpx.Response:
        async with self.client(key) as api:
            return await api.get(path, **kw)
