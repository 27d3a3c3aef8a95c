"""Fixtures for promise-tracker's tests: the service alone on real PostgreSQL and the real broker, a
ledger feed that produces ledger-sync's events to the broker, and a reader of dunning.promises.v1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from dunning_events import topics
from dunning_kit.clock import SimulatedClock
from dunning_kit.services import spec
from dunning_kit.testing import RunningService, start_service, wait_until_quiet
from promise_tracker.testing import LedgerFeed, TopicReader, read_topic


@pytest.fixture
def tracker_overrides() -> dict[str, Any]:
    # Judge deadlines the moment they pass, so boundary tests can look one second either side.
    return {"promise_deadline_settle_seconds": 0}


@pytest_asyncio.fixture
async def tracker(
    database_url: str, broker: Any, clock: SimulatedClock, tracker_overrides: dict[str, Any]
) -> AsyncIterator[RunningService]:
    svc = await start_service(
        spec("promise-tracker"),
        database_url=database_url,
        bootstrap_servers=broker.bootstrap_servers,
        clock=clock,
        overrides=tracker_overrides,
    )
    try:
        yield svc
    finally:
        await svc.stop()


@pytest_asyncio.fixture
async def ledger(broker: Any, clock: SimulatedClock) -> AsyncIterator[LedgerFeed]:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        yield LedgerFeed(producer, clock)
    finally:
        await producer.stop()


@pytest_asyncio.fixture
async def promise_events(tracker: RunningService, broker: Any) -> AsyncIterator[TopicReader]:
    reader = await read_topic(broker.bootstrap_servers, topics.PROMISES)
    try:
        yield reader
    finally:
        await reader.stop()


@pytest_asyncio.fixture
async def topic_reader(broker: Any) -> AsyncIterator[Any]:
    """Open readers of any topic (e.g. a dead-letter topic); closed at the end of the test."""
    readers: list[TopicReader] = []

    async def open_reader(topic: str) -> TopicReader:
        reader = await read_topic(broker.bootstrap_servers, topic)
        readers.append(reader)
        return reader

    yield open_reader
    for reader in readers:
        await reader.stop()


@pytest.fixture
def quiet(tracker: RunningService):  # type: ignore[no-untyped-def]
    async def wait() -> None:
        await wait_until_quiet([tracker.runtime])

    return wait
