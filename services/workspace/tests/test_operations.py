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
from dunning_kit.clock import SimulatedClock
from dunning_kit.event_testing import start_producer
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, PostgresBackend, RunningService, start_service
from workspace.domain.people import Role
from workspace.testing import PEOPLE, session_cookie

# One worker holds the module's platform (module-scoped) for all its tests, in file order.
pytestmark = pytest.mark.xdist_group("workspace-operations")


@pytest_asyncio.fixture(scope="module")
async def platform(pg_backend: PostgresBackend) -> AsyncIterator[dict[str, RunningService]]:
    broker = BrokerBackend.embedded()
    clock = SimulatedClock(SIM_START)
    database_url = pg_backend.fresh_database()
    started: dict[str, RunningService] = {}
    try:
        started["promise-tracker"] = tracker = await start_service(
            spec("promise-tracker"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers,
            clock=clock,
        )  # fmt: skip
        urls = ",".join(
            f"{name}={tracker.base_url if name == 'promise-tracker' else 'http://127.0.0.1:9'}"
            for name in ("ledger-sync", "policy-engine", "notifier", "promise-tracker", "insights")
        )
        started["workspace"] = await start_service(
            spec("workspace"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
            overrides={"workspace_cookie_secure": False, "workspace_api_keys": "acme=acme-admin-key",
                       "workspace_service_urls": urls},
        )  # fmt: skip
        producer = await start_producer(broker.bootstrap_servers)
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
        yield started
    finally:
        for svc in started.values():
            await svc.stop()
        broker.stop()


async def browser(platform: dict[str, RunningService], role: Role) -> tuple[httpx.AsyncClient, str]:
    cookies, signed = await session_cookie(platform["workspace"].runtime, PEOPLE[role])
    return httpx.AsyncClient(base_url=platform["workspace"].base_url, cookies=cookies, timeout=60), signed.csrf_token


async def test_an_admin_replays_dead_letters_one_then_all_each_once(platform: dict[str, RunningService]) -> None:
    group = platform["promise-tracker"].runtime.consumers[0].group
    client, csrf = await browser(platform, Role.admin)
    async with client:
        page = await client.get("/operations")
        assert page.status_code == 200
        assert f"promise-tracker: group {group} · 2 waiting" in page.text
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


async def test_a_collector_may_not_open_operations(platform: dict[str, RunningService]) -> None:
    client, csrf = await browser(platform, Role.collector)
    async with client:
        assert (await client.get("/operations")).status_code == 403
        home = await client.get("/")
        assert 'href="/operations"' not in home.text
        r = await client.post("/operations/dead-letters/replay", data={"csrf_token": csrf, "service": "notifier"})
        assert r.status_code == 403
