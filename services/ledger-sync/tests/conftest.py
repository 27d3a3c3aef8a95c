"""Fixtures for ledger-sync's tests: the service alone on a real socket, real PostgreSQL and broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from dunning_kit.clock import SimulatedClock
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, RunningService, start_service
from ledger_sync.testing import LedgerHarness


@pytest_asyncio.fixture
async def ledger_service(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> AsyncIterator[RunningService]:
    svc = await start_service(
        spec("ledger-sync"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock
    )
    try:
        yield svc
    finally:
        await svc.stop()


@pytest_asyncio.fixture
async def harness(ledger_service: RunningService, broker: BrokerBackend) -> LedgerHarness:
    return LedgerHarness(ledger_service, broker.bootstrap_servers)
