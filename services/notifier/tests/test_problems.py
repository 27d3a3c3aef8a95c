"""Every error the notifier answers is an RFC 9457 problem (application/problem+json): the kit's statuses
(401, 403, 404, 413, 429, 500), a malformed body (400), invalid input (422, naming the fields) and an unknown
delivery (404); the notifier has no conflict to answer (no 409). One service for the whole module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from dunning_kit.clock import SimulatedClock
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.testing import (
    PostgresBackend,
    RunningService,
    assert_common_problems,
    assert_problem,
    problem_fields,
    service_for_problem_tests,
)


@pytest_asyncio.fixture(scope="module")
async def notifier(pg_backend: PostgresBackend) -> AsyncIterator[RunningService]:
    async with service_for_problem_tests("notifier", pg_backend, SimulatedClock(SIM_START)) as svc:
        yield svc


async def test_the_kit_statuses_are_problems(notifier: RunningService) -> None:
    await assert_common_problems(notifier, tenant_route="/v1/templates", admin_route="/v1/customers/C-1/personal-data")


async def test_malformed_and_invalid_bodies_name_their_fields(notifier: RunningService) -> None:
    async with notifier.client("acme-admin-key") as admin:
        malformed = await admin.put(
            "/v1/templates/firm_reminder", content=b'{"subject":', headers={"content-type": "application/json"}
        )
        assert problem_fields(assert_problem(malformed, 400)) == ["(body)"]
        invalid = assert_problem(await admin.put("/v1/templates/firm_reminder", json={"locale": "en"}), 422)
        assert {"subject", "text"} <= set(problem_fields(invalid)), invalid


async def test_an_unknown_delivery_is_404(notifier: RunningService) -> None:
    async with notifier.client() as api:
        missing = "/v1/deliveries/00000000-0000-0000-0000-000000000000"
        assert_problem(await api.get(missing), 404)
