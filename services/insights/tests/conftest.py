"""Fixtures for insights' tests: the read model alone on real PostgreSQL and the real broker, a ledger feed that
produces ledger-sync's events to the broker (the kit's), and direct SQL on its schema for figure tests that seed
the tables instead of replaying a history.

`insights` is per test (a fresh database and broker, like every service's); a module that only reads seeded
tables should take `insights_module` instead: one service for the whole module, on a database of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from dunning_kit.clock import SimulatedClock
from dunning_kit.event_testing import LedgerFeed, start_producer
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, PostgresBackend, RunningService, start_service, wait_until_quiet

SERVICE = spec("insights")


@pytest.fixture
def insights_overrides() -> dict[str, Any]:
    """Settings of the `insights` fixture; override this fixture in a module to change them."""
    return {}


@pytest_asyncio.fixture
async def insights(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock, insights_overrides: dict[str, Any]
) -> AsyncIterator[RunningService]:
    svc = await start_service(
        SERVICE,
        database_url=database_url,
        bootstrap_servers=broker.bootstrap_servers,
        clock=clock,
        overrides=insights_overrides,
    )
    try:
        yield svc
    finally:
        await svc.stop()


@pytest_asyncio.fixture(scope="module")
async def insights_module(pg_backend: PostgresBackend) -> AsyncIterator[RunningService]:
    """One insights for the whole module (its own database and broker, a simulated clock at SIM_START): for
    tests that seed the read model's tables and read figures, which need no fresh service each."""
    broker = BrokerBackend.embedded()
    try:
        svc = await start_service(
            SERVICE,
            database_url=pg_backend.fresh_database(),
            bootstrap_servers=broker.bootstrap_servers,
            clock=SimulatedClock(SIM_START),
        )
        try:
            yield svc
        finally:
            await svc.stop()
    finally:
        broker.stop()


@pytest_asyncio.fixture
async def ledger(broker: BrokerBackend, clock: SimulatedClock) -> AsyncIterator[LedgerFeed]:
    """ledger-sync's events, produced to the test's broker as ledger-sync would (no ledger-sync running)."""
    async with LedgerFeed(await start_producer(broker.bootstrap_servers), clock) as feed:
        yield feed


@pytest.fixture
def quiet(insights: RunningService) -> Callable[[], Awaitable[None]]:
    """Wait until insights has applied everything on its topics (no consumer lag, nothing due)."""

    async def wait() -> None:
        await wait_until_quiet([insights.runtime])

    return wait


Sql = Callable[..., Awaitable[list[Any]]]


def sql_on(svc: RunningService) -> Sql:
    """Run one statement on the service's own database (search_path: its schema); rows for a SELECT."""

    async def run(statement: str, **params: Any) -> list[Any]:
        async with svc.runtime.engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []

    return run


@pytest.fixture
def sql(insights: RunningService) -> Sql:
    return sql_on(insights)
