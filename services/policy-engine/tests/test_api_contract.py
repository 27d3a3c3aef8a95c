"""The API contract of the policy-engine, on one service for the whole module.

Every error is an RFC 9457 problem (application/problem+json): the kit's statuses (401, 403, 404, 413, 429,
500), a malformed body (400), invalid input (422, naming the fields), an unknown policy (404) and a policy id
taken (409). Creating a policy and publishing a version take an Idempotency-Key: a retry replays the first
answer instead of a 409 or a second version."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from dunning_kit.clock import SimulatedClock
from dunning_kit.idempotency import HEADER as IDEMPOTENCY_KEY
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
async def engine(pg_backend: PostgresBackend) -> AsyncIterator[RunningService]:
    async with service_for_problem_tests("policy-engine", pg_backend, SimulatedClock(SIM_START)) as svc:
        yield svc


async def test_the_kit_statuses_are_problems(engine: RunningService) -> None:
    await assert_common_problems(
        engine, tenant_route="/v1/customers/C-1/timeline", admin_route="/v1/customers/C-1/personal-data"
    )


async def test_malformed_and_invalid_bodies_name_their_fields(engine: RunningService) -> None:
    async with engine.client("acme-admin-key") as admin:
        malformed = await admin.put(
            "/v1/assignments/segments/smb", content=b'{"policy_id": ', headers={"content-type": "application/json"}
        )
        assert problem_fields(assert_problem(malformed, 400)) == ["(body)"]
        invalid = assert_problem(await admin.post("/v1/policies", json={"id": "p", "priority": "high"}), 422)
        assert {"field": "priority", "reason": "must be an integer"} in invalid["errors"], invalid
        assert invalid["detail"] == "invalid policy"


async def test_unknown_objects_are_404_and_a_taken_policy_id_is_409(engine: RunningService) -> None:
    step = {"name": "a", "offset_days": 1, "channels": ["email"], "template_id": "a", "tone": "gentle"}
    policy = {"id": "p409", "name": "Taken", "steps": [step]}
    async with engine.client("acme-admin-key") as admin:
        assert "no policy nope" in assert_problem(await admin.get("/v1/policies/nope"), 404)["detail"]
        created = await admin.post("/v1/policies", json=policy)
        assert created.status_code == 201, created.text
        taken = assert_problem(await admin.post("/v1/policies", json=policy), 409)
        assert "p409" in taken["detail"], taken


async def test_a_retried_policy_create_or_publish_replays_the_first_answer(engine: RunningService) -> None:
    step = {"name": "a", "offset_days": 1, "channels": ["email"], "template_id": "a", "tone": "gentle"}
    policy = {"id": "p-retry", "name": "Retried", "steps": [step]}
    async with engine.client("acme-admin-key") as admin:
        created = await admin.post("/v1/policies", json=policy, headers={IDEMPOTENCY_KEY: "create-p-retry"})
        assert created.status_code == 201, created.text
        retried = await admin.post("/v1/policies", json=policy, headers={IDEMPOTENCY_KEY: "create-p-retry"})
        assert (retried.status_code, retried.json()) == (201, created.json()), retried.text
        assert retried.headers["idempotent-replayed"] == "true"
        assert (await admin.post("/v1/policies", json=policy)).status_code == 409, "without the key: a conflict"

        v2 = {**policy, "steps": [{**step, "offset_days": 3}]}
        published = [
            await admin.put("/v1/policies/p-retry", json=v2, headers={IDEMPOTENCY_KEY: "publish-p-retry-2"})
            for _ in range(2)
        ]
        assert [(p.status_code, p.json()["version"]) for p in published] == [(200, 2), (200, 2)], published[1].text
        versions = (await admin.get("/v1/policies/p-retry/versions")).json()
        assert len(versions.get("items", versions)) == 2, versions
        reused = await admin.put("/v1/policies/p-retry", json=policy, headers={IDEMPOTENCY_KEY: "publish-p-retry-2"})
        assert problem_fields(assert_problem(reused, 422)) == [IDEMPOTENCY_KEY]
