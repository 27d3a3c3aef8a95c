"""The API contract of the notifier, on one service for the whole module.

Every error is an RFC 9457 problem (application/problem+json): the kit's statuses (401, 403, 404, 413, 429,
500), a malformed body (400), invalid input (422, naming the fields) and an unknown delivery (404); the
notifier has no conflict to answer (no 409). Saving a template and adding a suppression take an
Idempotency-Key: a retry replays the first answer and emits no second event."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy import text

from dunning_events import topics
from dunning_kit.clock import SimulatedClock
from dunning_kit.event_testing import assert_exported, topic_events
from dunning_kit.idempotency import HEADER as IDEMPOTENCY_KEY
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


async def outbox_rows(notifier: RunningService) -> int:
    async with notifier.runtime.sessions() as session:
        return int(await session.scalar(text("SELECT count(*) FROM outbox")) or 0)


async def test_a_retried_suppression_or_template_replays_the_first_answer(notifier: RunningService) -> None:
    suppression = {"kind": "phone", "address": "+1 (415) 555-0199", "customer_id": "C-7"}
    template = {"locale": "en", "subject": "Reminder", "text": "Please pay {{ total }}"}
    async with notifier.client("acme-admin-key") as admin:
        key = {IDEMPOTENCY_KEY: "suppress-0199"}
        made = await admin.post("/v1/suppressions", json=suppression, headers=key)
        assert made.status_code == 201, made.text
        events = await outbox_rows(notifier)
        again = await admin.post("/v1/suppressions", json=suppression, headers=key)
        assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (201, made.json(), "true")
        assert await outbox_rows(notifier) == events, "the retry emitted nothing"

        saved = [
            await admin.put("/v1/templates/gentle_reminder", json=template, headers={IDEMPOTENCY_KEY: "tpl-1"})
            for _ in range(2)
        ]
        assert [s.status_code for s in saved] == [saved[0].status_code] * 2 and saved[0].status_code < 300
        assert saved[1].json() == saved[0].json() and saved[1].headers["idempotent-replayed"] == "true"
        other = {**template, "subject": "Another"}
        reused = await admin.put("/v1/templates/gentle_reminder", json=other, headers={IDEMPOTENCY_KEY: "tpl-1"})
        assert problem_fields(assert_problem(reused, 422)) == [IDEMPOTENCY_KEY]


async def test_an_event_the_notifier_published_comes_back_from_its_events_export(notifier: RunningService) -> None:
    suppression = {"kind": "email", "address": "stop@example.com", "customer_id": "C-export"}
    async with notifier.client("acme-admin-key") as admin:
        assert (await admin.post("/v1/suppressions", json=suppression)).status_code == 201
    await wait_until_quiet([notifier.runtime])
    on_topic = await topic_events(notifier.runtime.settings.kafka_bootstrap_servers, topics.NOTIFICATIONS)
    revoked = [e for e in on_topic if e.type == "consent.revoked" and e.customer_id == "C-export"]
    await assert_exported(notifier, revoked, "acme-api-key", "globex-api-key")
