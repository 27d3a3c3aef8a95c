"""The operations page on a real consuming service (promise-tracker): an admin sees its dead letters with their
error and replays one, then all (each once); the services that do not answer leave their part "not available"
and the page still shows; a collector may not open it."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from dunning_events import topics
from dunning_events.codec import encode
from dunning_events.events import PromiseCreated
from dunning_events.examples import example_event
from dunning_events.topics import dead_letter_topic, partition_key
from dunning_kit.event_testing import start_producer
from dunning_kit.testing import PostgresBackend
from workspace.domain.people import Role
from workspace.testing import PEOPLE

from .pages_platform import PagesPlatform, pages_platform

# One worker holds the module's platform (module-scoped) for all its tests, in file order.
pytestmark = pytest.mark.xdist_group("workspace-operations")


@pytest_asyncio.fixture(scope="module")
async def platform(pg_backend: PostgresBackend) -> AsyncIterator[PagesPlatform]:
    """promise-tracker with two dead letters of acme in its first group; the others do not answer."""
    async with pages_platform(pg_backend, ["promise-tracker"]) as running:
        tracker = running.services["promise-tracker"]
        producer = await start_producer(tracker.runtime.settings.kafka_bootstrap_servers)
        group = tracker.runtime.consumers[0].group
        try:
            for error in ("KeyError: 'due_date'", "ValueError: bad amount"):
                event = example_event(PromiseCreated.event_type).model_copy(update={"id": uuid.uuid4()})
                attributes, value = encode(event)
                headers = [*attributes, ("dlq-error", error.encode()), ("dlq-source-topic", topics.PROMISES.encode())]
                key = partition_key(event.tenant_id, "C-1").encode()
                await producer.send_and_wait(dead_letter_topic(group), value, key=key, headers=headers)
        finally:
            await producer.stop()
        yield running


async def browser(platform: PagesPlatform, role: Role) -> tuple[httpx.AsyncClient, str]:
    client, signed = await platform.browser(PEOPLE[role])
    return client, signed.csrf_token


async def test_an_admin_replays_dead_letters_one_then_all_each_once(platform: PagesPlatform) -> None:
    group = platform.services["promise-tracker"].runtime.consumers[0].group
    client, csrf = await browser(platform, Role.admin)
    async with client:
        page = await client.get("/operations")
        assert page.status_code == 200
        assert f"promise-tracker: group {group} · 2 waiting" in page.text
        assert f'data-confirm="Send all 2 waiting dead letter(s) of {group} back' in page.text  # the script asks
        assert "KeyError: &#39;due_date&#39;" in page.text and "ValueError: bad amount" in page.text
        # The parts whose service does not answer say so; the page still shows the rest.
        assert page.text.count("could not be loaded") == 5  # 3 dead-letter services, connectors, deliveries
        first = re.search(r'name="event_id" value="([^"]+)"', page.text)
        assert first is not None
        form = {"csrf_token": csrf, "service": "promise-tracker", "group": group}
        one = await client.post("/operations/dead-letters/replay", data={**form, "event_id": first.group(1)})
        assert one.status_code == 303 and "replayed=1&again=0" in one.headers["location"]
        shown = await client.get(one.headers["location"])
        assert "1 dead letter(s) sent back" in shown.text and f"group {group} · 1 waiting" in shown.text
        rest = await client.post("/operations/dead-letters/replay", data=form)
        assert "replayed=1&again=1" in rest.headers["location"]
        again = await client.post("/operations/dead-letters/replay", data=form)
        assert "replayed=0&again=2" in again.headers["location"]
        bad = await client.post("/operations/dead-letters/replay", data={**form, "service": "nope"})
        assert bad.status_code == 422


async def test_a_collector_may_not_open_operations(platform: PagesPlatform) -> None:
    client, csrf = await browser(platform, Role.collector)
    async with client:
        assert (await client.get("/operations")).status_code == 403
        home = await client.get("/")
        assert 'href="/operations"' not in home.text
        r = await client.post("/operations/dead-letters/replay", data={"csrf_token": csrf, "service": "notifier"})
        assert r.status_code == 403
