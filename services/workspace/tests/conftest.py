"""Fixtures for workspace's tests: the workspace alone on real PostgreSQL and the real broker (module-scoped: the
frame's tests only open sessions), and a browser-like HTTP client that keeps cookies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from dunning_kit.clock import SimulatedClock
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, PostgresBackend, RunningService, start_service

SERVICE = spec("workspace")


@pytest_asyncio.fixture(scope="module")
async def workspace(pg_backend: PostgresBackend) -> AsyncIterator[RunningService]:
    broker = BrokerBackend.embedded()
    try:
        svc = await start_service(
            SERVICE,
            database_url=pg_backend.fresh_database(),
            bootstrap_servers=broker.bootstrap_servers,
            clock=SimulatedClock(SIM_START),
            overrides={"workspace_cookie_secure": False, "workspace_api_keys": "acme=acme-admin-key"},
        )
        try:
            yield svc
        finally:
            await svc.stop()
    finally:
        broker.stop()
