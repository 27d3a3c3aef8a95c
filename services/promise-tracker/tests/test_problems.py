"""Every error promise-tracker answers is an RFC 9457 problem (application/problem+json): the kit's statuses
(401, 403, 404, 413, 429, 500), a malformed body (400), invalid input (422, naming the fields), an unknown
promise (404) and a promise cancelled twice (409). One service for the whole module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio
from aiokafka import AIOKafkaProducer

from dunning_kit.clock import SimulatedClock
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.testing import (
    PostgresBackend,
    RunningService,
    assert_common_problems,
    assert_problem,
    problem_fields,
    service_for_problem_tests,
    wait_until_quiet,
)
from promise_tracker.testing import LedgerFeed

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


async def test_an_unknown_promise_is_404_and_a_second_cancel_is_409(tracker: RunningService) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=tracker.runtime.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        ledger = LedgerFeed(producer, CLOCK)
        await ledger.customer("C-1")
        await ledger.invoice("INV-1", "C-1", "100.00")
    finally:
        await producer.stop()
    await wait_until_quiet([tracker.runtime])
    promise = {"customer_id": "C-1", "invoice_ids": ["INV-1"], "amount": "100.00", "currency": "EUR",
               "promised_date": (CLOCK.now().date() + timedelta(days=5)).isoformat(), "recorded_by": "collector"}  # fmt: skip
    async with tracker.client() as api:
        assert_problem(await api.get("/v1/promises/P-404"), 404)
        created = await api.post("/v1/promises", json=promise)
        assert created.status_code == 201, created.text
        cancel = f"/v1/promises/{created.json()['id']}/cancel"
        assert (await api.post(cancel)).status_code == 200
        assert_problem(await api.post(cancel), 409)
