"""The API contract of promise-tracker, on one service for the whole module.

Every error is an RFC 9457 problem (application/problem+json): the kit's statuses (401, 403, 404, 413, 429,
500), a malformed body (400), invalid input (422, naming the fields), an unknown promise (404) and a promise
cancelled twice (409). Promises and plans take an Idempotency-Key: a retry replays the first answer, another
request with the key is refused, concurrent duplicates write once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest_asyncio
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from dunning_events import topics
from dunning_events.acting import EventActor
from dunning_kit.actor import HEADER as ACTOR_HEADER
from dunning_kit.clock import SimulatedClock
from dunning_kit.event_testing import LedgerFeed, assert_exported, topic_events
from dunning_kit.idempotency import HEADER as IDEMPOTENCY_KEY
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.testing import (
    COLIN,
    PostgresBackend,
    RunningService,
    acting_as,
    assert_common_problems,
    assert_problem,
    problem_fields,
    service_for_problem_tests,
    wait_until_quiet,
)

CLOCK = SimulatedClock(SIM_START)


@pytest_asyncio.fixture(scope="module")
async def tracker(pg_backend: PostgresBackend) -> AsyncIterator[RunningService]:
    async with service_for_problem_tests("promise-tracker", pg_backend, CLOCK) as svc:
        yield svc


async def test_the_kit_statuses_are_problems(tracker: RunningService) -> None:
    await assert_common_problems(
        tracker, tenant_route="/v1/promises/P-1", admin_route="/v1/customers/C-1/personal-data"
    )


async def test_malformed_and_invalid_bodies_name_their_fields(tracker: RunningService) -> None:
    async with tracker.client() as api:
        malformed = await api.post("/v1/promises", content=b"{not json", headers={"content-type": "application/json"})
        assert problem_fields(assert_problem(malformed, 400)) == ["(body)"]
        invalid = assert_problem(await api.post("/v1/promises", json={"customer_id": "C-1"}), 422)
        assert {"invoice_ids", "amount", "currency", "promised_date"} <= set(problem_fields(invalid)), invalid


@pytest_asyncio.fixture(scope="module")
async def invoices(tracker: RunningService) -> list[str]:
    """Customer C-1 with six open invoices of 100.00 EUR, one per test that records a promise or a plan."""
    producer = AIOKafkaProducer(bootstrap_servers=tracker.runtime.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        ledger = LedgerFeed(producer, CLOCK)
        await ledger.customer("C-1")
        ids = [f"INV-{n}" for n in range(1, 7)]
        for invoice in ids:
            await ledger.invoice(invoice, "C-1", "100.00")
    finally:
        await producer.stop()
    await wait_until_quiet([tracker.runtime])
    return ids


def promise_of(invoice: str, **over: Any) -> dict[str, Any]:
    return {"customer_id": "C-1", "invoice_ids": [invoice], "amount": "100.00", "currency": "EUR",
            "promised_date": (CLOCK.now().date() + timedelta(days=5)).isoformat(), "recorded_by": "collector",
            **over}  # fmt: skip


async def test_an_unknown_promise_is_404_and_a_second_cancel_is_409(
    tracker: RunningService, invoices: list[str]
) -> None:
    promise = promise_of(invoices[0])
    async with tracker.client() as api:
        assert_problem(await api.get("/v1/promises/P-404"), 404)
        created = await api.post("/v1/promises", json=promise)
        assert created.status_code == 201, created.text
        cancel = f"/v1/promises/{created.json()['id']}/cancel"
        assert (await api.post(cancel)).status_code == 200
        assert_problem(await api.post(cancel), 409)


async def test_a_retried_promise_is_replayed_and_another_body_with_its_key_refused(
    tracker: RunningService, invoices: list[str]
) -> None:
    key = {IDEMPOTENCY_KEY: "promise-retry-1"}
    async with tracker.client() as api:
        first = await api.post("/v1/promises", json=promise_of(invoices[1]), headers=key)
        assert first.status_code == 201, first.text
        again = await api.post("/v1/promises", json=promise_of(invoices[1]), headers=key)
        replayed = (again.status_code, again.json(), again.headers.get("idempotent-replayed"))
        assert replayed == (201, first.json(), "true"), again.text
        other = assert_problem(await api.post("/v1/promises", json=promise_of(invoices[2]), headers=key), 422)
        assert problem_fields(other) == [IDEMPOTENCY_KEY], other
        # Without the key the same request is a new promise: refused, the invoice already has one.
        assert (await api.post("/v1/promises", json=promise_of(invoices[1]))).status_code == 422
        too_long = await api.post("/v1/promises", json=promise_of(invoices[2]), headers={IDEMPOTENCY_KEY: "k" * 256})
        assert problem_fields(assert_problem(too_long, 422)) == [IDEMPOTENCY_KEY]


async def test_concurrent_duplicates_of_a_plan_write_one_plan(tracker: RunningService, invoices: list[str]) -> None:
    today = CLOCK.now().date()
    plan = {"customer_id": "C-1", "invoice_ids": invoices[3:5], "currency": "EUR", "recorded_by": "collector",
            "instalment_count": 2, "first_due_date": (today + timedelta(days=7)).isoformat()}  # fmt: skip
    async with tracker.client() as api:
        answers = await asyncio.gather(
            *(api.post("/v1/plans", json=plan, headers={IDEMPOTENCY_KEY: "plan-once"}) for _ in range(3))
        )
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sorted(a.headers.get("idempotent-replayed", "") for a in answers) == ["", "true", "true"]
    async with tracker.runtime.sessions() as session:
        plans = await session.scalar(text("SELECT count(*) FROM plans WHERE tenant_id = 'acme'"))
    assert plans == 1


async def test_an_event_the_tracker_published_comes_back_from_its_events_export(
    tracker: RunningService, invoices: list[str]
) -> None:
    async with tracker.client() as api:
        created = await api.post("/v1/promises", json=promise_of(invoices[5]))
        assert created.status_code == 201, created.text
    await wait_until_quiet([tracker.runtime])
    on_topic = await topic_events(tracker.runtime.settings.kafka_bootstrap_servers, topics.PROMISES)
    promised = [e for e in on_topic if e.type == "promise.created" and e.subject == created.json()["id"]]
    await assert_exported(tracker, promised, "acme-api-key", "globex-api-key")


async def test_promises_recorded_for_a_person_are_audited_and_a_refused_person_records_nothing(
    tracker: RunningService, invoices: list[str]
) -> None:
    """Who acted (`Dunning-Actor`): the audit log names the person; a retry replayed by its key is no second
    change; an actor of another tenant than the key's is a 401 and records no promise."""
    promise = promise_of(invoices[2])
    async with tracker.client() as api, tracker.client("globex-api-key") as globex:
        foreign = await globex.post("/v1/promises", json=promise, headers=acting_as(COLIN, CLOCK))
        assert problem_fields(assert_problem(foreign, 401)) == [ACTOR_HEADER]
        by_colin = {**acting_as(COLIN, CLOCK), IDEMPOTENCY_KEY: "colin-promise"}
        created = await api.post("/v1/promises", json=promise, headers=by_colin)
        assert created.status_code == 201, created.text
        assert (await api.post("/v1/promises", json=promise, headers=by_colin)).status_code == 201  # replayed
        cancel = f"/v1/promises/{created.json()['id']}/cancel"
        assert (await api.post(cancel, headers=acting_as(COLIN, CLOCK))).status_code == 200
        assert_problem(await api.post(cancel, headers=acting_as(COLIN, CLOCK)), 409)
    async with tracker.client("acme-admin-key") as admin:
        audit = (await admin.get("/v1/audit-log", params={"person": "colin"})).json()["items"]
    assert [(e["route"], e["outcome"], e["status"], e["actor"]["name"]) for e in audit] == [
        ("/v1/promises/{promise_id}/cancel", "refused", 409, "Colin Collector"),
        ("/v1/promises/{promise_id}/cancel", "applied", None, "Colin Collector"),
        ("/v1/promises", "applied", None, "Colin Collector"),
    ]
    assert audit[1]["targets"] == {"promise_id": created.json()["id"]}
    # The events it wrote name the person too (ce_actor*, dunning_events.acting), on the topic and in the export.
    await wait_until_quiet([tracker.runtime])
    on_topic = await topic_events(tracker.runtime.settings.kafka_bootstrap_servers, topics.PROMISES)
    made = [e for e in on_topic if e.subject == created.json()["id"]]
    assert [(e.type, e.actor) for e in made] == [
        ("promise.created", EventActor(sub="colin", name="Colin Collector")),
        ("promise.cancelled", EventActor(sub="colin", name="Colin Collector")),
    ]
    await assert_exported(tracker, made, "acme-api-key", "globex-api-key")
