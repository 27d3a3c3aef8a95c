"""Pytest fixtures for every test in the repo: real PostgreSQL (a fresh database per test, copied from a
migrated template), a real broker (a fresh one per test: memory storage starts in ~0.2 s), a simulated
clock, a local SMTP sink, and the whole platform in-process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dunning_kit.clock import SimulatedClock
from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.event_testing import OpenReader, TopicReader, read_topic
from dunning_kit.testing import BrokerBackend, Platform, PostgresBackend, start_platform, use_containers

# A Monday morning, so business-day arithmetic in tests starts from an ordinary day.
SIM_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


_EXPORTER: InMemorySpanExporter | None = None


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    """Finished spans of this test (tracing is installed once per process with an in-memory exporter)."""
    global _EXPORTER
    if _EXPORTER is None:
        _EXPORTER = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    return _EXPORTER


@pytest.fixture(scope="session")
def pg_backend() -> Iterator[PostgresBackend]:
    backend = PostgresBackend.containers() if use_containers() else PostgresBackend.embedded()
    try:
        backend.build_template()
        yield backend
    finally:
        backend.stop()


@pytest.fixture
def database_url(pg_backend: PostgresBackend) -> str:
    """A fresh database with every service's schema migrated, private to this test."""
    return pg_backend.fresh_database()


@pytest.fixture(scope="session")
def _session_broker() -> Iterator[BrokerBackend | None]:
    # With containers a broker per test is too slow: share one and rely on fresh groups + tenants.
    if use_containers():
        backend = BrokerBackend.containers()
        yield backend
        backend.stop()
    else:
        yield None


@pytest.fixture
def broker(_session_broker: BrokerBackend | None) -> Iterator[BrokerBackend]:
    if _session_broker is not None:
        yield _session_broker
        return
    backend = BrokerBackend.embedded()
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(SIM_START)


@pytest_asyncio.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    async with SmtpSink() as sink:
        yield sink


@pytest.fixture
def platform_overrides(smtp_sink: SmtpSink) -> dict[str, dict[str, object]]:
    """Per-service settings for the platform fixture; override this fixture to change them."""
    return {"notifier": {"smtp_host": smtp_sink.host, "smtp_port": smtp_sink.port}}


@pytest_asyncio.fixture
async def platform(
    database_url: str,
    broker: BrokerBackend,
    clock: SimulatedClock,
    platform_overrides: dict[str, dict[str, object]],
) -> AsyncIterator[Platform]:
    stack = await start_platform(
        database_url=database_url,
        bootstrap_servers=broker.bootstrap_servers,
        clock=clock,
        overrides=platform_overrides,
    )
    try:
        yield stack
    finally:
        await stack.stop()


@pytest_asyncio.fixture
async def topic_reader(broker: BrokerBackend) -> AsyncIterator[OpenReader]:
    """Opens readers of any topic from its beginning (event_testing.read_topic); stopped at the end of the test."""
    readers: list[TopicReader] = []

    async def open_reader(topic: str) -> TopicReader:
        readers.append(await read_topic(broker.bootstrap_servers, topic))
        return readers[-1]

    yield open_reader
    for reader in readers:
        await reader.stop()
