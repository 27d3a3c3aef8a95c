"""The dead letters over HTTP (dunning_kit.dead_letters_api) on a real consuming service: its tenant's admins see
each group's dead letters with their error, replay one or all, and a second replay changes nothing; another
tenant's dead letters are neither shown nor replayed; a record with no tenant is only counted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from aiokafka import AIOKafkaProducer

from dunning_events import topics
from dunning_events.codec import encode
from dunning_events.events import PromiseCreated
from dunning_events.examples import example_event
from dunning_events.topics import dead_letter_topic, partition_key
from dunning_kit.clock import SimulatedClock
from dunning_kit.event_testing import envelope_of, start_producer, topic_records
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, PostgresBackend, RunningService, start_service


@pytest_asyncio.fixture(scope="module")
async def tracker(pg_backend: PostgresBackend) -> AsyncIterator[tuple[RunningService, BrokerBackend]]:
    broker = BrokerBackend.embedded()
    try:
        svc = await start_service(
            spec("promise-tracker"), database_url=pg_backend.fresh_database(),
            bootstrap_servers=broker.bootstrap_servers, clock=SimulatedClock(SIM_START),
        )  # fmt: skip
        try:
            yield svc, broker
        finally:
            await svc.stop()
    finally:
        broker.stop()


async def dead_letter(producer: AIOKafkaProducer, group: str, tenant: str | None, error: str) -> str:
    """A record as the consumer dead-letters one: the event's value and headers, plus the dlq-* ones."""
    event = example_event(PromiseCreated.event_type).model_copy(
        update={"tenant_id": tenant or "acme", "id": uuid.uuid4()}
    )
    attributes, value = encode(event)
    if tenant is None:
        attributes, value = [], b"not an event"
    headers = [*attributes, ("dlq-error", error.encode()), ("dlq-source-topic", topics.LEDGER.encode()),
               ("dlq-source-partition", b"0"), ("dlq-source-offset", b"7")]  # fmt: skip
    key = partition_key(event.tenant_id, "C-1").encode()
    await producer.send_and_wait(dead_letter_topic(group), value, key=key, headers=headers)
    return str(event.id)


async def test_a_tenants_admin_lists_and_replays_its_dead_letters_once(
    tracker: tuple[RunningService, BrokerBackend],
) -> None:
    svc, broker = tracker
    group = svc.runtime.consumers[0].group
    producer = await start_producer(broker.bootstrap_servers)
    try:
        first = await dead_letter(producer, group, "acme", "KeyError: 'due_date'")
        second = await dead_letter(producer, group, "acme", "ValueError: bad amount")
        foreign = await dead_letter(producer, group, "globex", "KeyError: 'x'")
        await dead_letter(producer, group, None, "not an event")
    finally:
        await producer.stop()
    async with svc.client("acme-admin-key") as admin, svc.client() as api:
        assert (await api.get("/v1/dead-letters")).status_code == 403
        listed = (await admin.get("/v1/dead-letters")).json()
        mine = next(g for g in listed["groups"] if g["group"] == group)
        assert [(d["event_id"], d["error"], d["replayed"]) for d in mine["letters"]] == [
            (first, "KeyError: 'due_date'", False), (second, "ValueError: bad amount", False),
        ]  # fmt: skip
        assert (mine["waiting"], mine["unattributed"]) == (2, 1)
        assert {g["group"] for g in listed["groups"]} == {c.group for c in svc.runtime.consumers}

        one = (await admin.post(f"/v1/dead-letters/{group}/replay", json={"event_ids": [first, foreign]})).json()
        assert (one["replayed"], one["not_found"]) == ([first], [foreign])
        rest = (await admin.post(f"/v1/dead-letters/{group}/replay", json={})).json()
        assert (rest["replayed"], rest["already_replayed"]) == ([second], [first])
        again = (await admin.post(f"/v1/dead-letters/{group}/replay", json={})).json()
        assert (again["replayed"], again["already_replayed"]) == ([], sorted([first, second]))
        after = next(g for g in (await admin.get("/v1/dead-letters")).json()["groups"] if g["group"] == group)
        assert [d["replayed"] for d in after["letters"]] == [True, True] and after["waiting"] == 0
        unknown = await admin.post("/v1/dead-letters/nope/replay", json={})
        assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "group"
    replayed = [envelope_of(r).id for r in await topic_records(broker.bootstrap_servers, topics.LEDGER, expect=2)]
    assert sorted(map(str, replayed)) == sorted([first, second])  # the foreign tenant's stayed where it was
