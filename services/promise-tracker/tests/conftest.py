"""Fixtures for promise-tracker's tests: the service alone on real PostgreSQL and the real broker, a
ledger feed that produces ledger-sync's events to the broker (the kit's), and a reader of dunning.promises.v1
(the kit's `topic_reader` fixture opens readers of any other topic)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from dunning_events import topics
from dunning_kit.clock import SimulatedClock
from dunning_kit.event_testing import LedgerFeed, OpenReader, TopicReader, start_producer
from dunning_kit.services import spec
from dunning_kit.testing import RunningService, start_service, wait_until_quiet


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
    async with LedgerFeed(await start_producer(broker.bootstrap_servers), clock) as feed:
        yield feed


@pytest_asyncio.fixture
async def promise_events(tracker: RunningService, topic_reader: OpenReader) -> TopicReader:
    return await topic_reader(topics.PROMISES)


@pytest.fixture
def quiet(tracker: RunningService):  # type: ignore[no-untyped-def]
    async def wait() -> None:
        await wait_until_quiet([tracker.runtime])

    return wait
