"""The API contract of ledger-sync, on one service for the whole module.

Every error is an RFC 9457 problem (application/problem+json): the kit's statuses (401, 403, 404, 413, 429,
500), a malformed body (400), invalid input (422, naming the fields), an unknown invoice (404) and an ERP
company another tenant connected (409). A CSV import takes an Idempotency-Key (the ledger's writes too:
test_api_keys_and_reads.py); keys expire after IDEMPOTENCY_KEY_TTL_HOURS and housekeeping deletes them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy import text

from dunning_kit.clock import SimulatedClock
from dunning_kit.idempotency import HEADER as IDEMPOTENCY_KEY
from dunning_kit.personal_data import forget_idempotent_answers
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.testing import (
    PostgresBackend,
    RunningService,
    assert_common_problems,
    assert_problem,
    problem_fields,
    service_for_problem_tests,
)
from ledger_sync.adapters import orm

CLOCK = SimulatedClock(SIM_START)
CSV = {"content-type": "text/csv"}


@pytest_asyncio.fixture(scope="module")
async def ledger(pg_backend: PostgresBackend) -> AsyncIterator[RunningService]:
    async with service_for_problem_tests("ledger-sync", pg_backend, CLOCK) as svc:
        yield svc


async def test_the_kit_statuses_are_problems(ledger: RunningService) -> None:
    await assert_common_problems(
        ledger, tenant_route="/v1/imports/formats", admin_route="/v1/customers/C-1/personal-data"
    )


async def test_malformed_and_invalid_bodies_name_their_fields(ledger: RunningService) -> None:
    async with ledger.client() as api:
        malformed = await api.post("/v1/invoices", content=b'{"id": "I",', headers={"content-type": "application/json"})
        assert problem_fields(assert_problem(malformed, 400)) == ["(body)"]
        invalid = assert_problem(await api.post("/v1/customers", json={"id": "C-1", "name": 7}), 422)
        assert problem_fields(invalid) == ["name"] and invalid["errors"][0]["location"] == "body", invalid
        bad_csv = await api.post(
            "/v1/imports/customers", content=b"id,name\nC-1,\n", headers={"content-type": "text/csv"}
        )
        rejected = assert_problem(bad_csv, 422)
        assert [(e["line"], e["column"]) for e in rejected["errors"]] == [(2, "name")], rejected


async def test_unknown_objects_are_404_and_a_taken_erp_company_is_409(ledger: RunningService) -> None:
    body = {"external_account": "9130350000000001", "config": {"client_id": "app"}}
    async with (
        ledger.client() as api,
        ledger.client("acme-admin-key") as acme,
        ledger.client("globex-admin-key") as globex,
    ):
        assert_problem(await api.get("/v1/invoices/NOPE"), 404)
        assert (await acme.put("/v1/connectors/quickbooks", json=body)).status_code == 200
        taken = assert_problem(await globex.put("/v1/connectors/quickbooks", json=body), 409)
        assert taken["type"] == "urn:dunning:problem:external-account-taken"


async def test_a_retried_import_replays_the_first_report(ledger: RunningService) -> None:
    csv = b"id,name\nC-IMP-1,Initech\nC-IMP-2,Globex\n"
    async with ledger.client() as api:
        first = await api.post("/v1/imports/customers", content=csv, headers={**CSV, IDEMPOTENCY_KEY: "import-1"})
        assert first.status_code == 200 and first.json()["imported"] == 2, first.text
        retried = await api.post("/v1/imports/customers", content=csv, headers={**CSV, IDEMPOTENCY_KEY: "import-1"})
        assert (retried.json(), retried.headers["idempotent-replayed"]) == (first.json(), "true")
        unkeyed = await api.post("/v1/imports/customers", content=csv, headers=CSV)
        assert unkeyed.json()["imported"] == 0, "without the key the file is imported again (unchanged rows)"
        other = await api.post(
            "/v1/imports/customers", content=csv + b"C-IMP-3,Umbrella\n", headers={**CSV, IDEMPOTENCY_KEY: "import-1"}
        )
        assert problem_fields(assert_problem(other, 422)) == [IDEMPOTENCY_KEY]


async def keys(ledger: RunningService) -> list[str]:
    async with ledger.runtime.sessions() as session:
        return list(await session.scalars(text("SELECT key FROM idempotency_keys ORDER BY key")))


async def test_keys_expire_after_their_ttl_and_housekeeping_deletes_them(ledger: RunningService) -> None:
    ttl = ledger.runtime.settings.idempotency_key_ttl_hours
    assert ttl == 24, "the documented default"
    async with ledger.client() as api:
        key = {IDEMPOTENCY_KEY: "customer-ttl"}
        assert (await api.post("/v1/customers", json={"id": "C-TTL", "name": "A"}, headers=key)).status_code == 201
        CLOCK.advance(hours=ttl - 1)
        assert (await api.post("/v1/customers", json={"id": "C-TTL", "name": "B"}, headers=key)).status_code == 422
        assert await ledger.runtime.prune_idempotency_keys() == 0 and "customer-ttl" in await keys(ledger)
        CLOCK.advance(hours=2)
        assert await ledger.runtime.prune_idempotency_keys() >= 1
        assert "customer-ttl" not in await keys(ledger)
        renamed = await api.post("/v1/customers", json={"id": "C-TTL", "name": "B"}, headers=key)
        assert renamed.status_code == 200 and renamed.json()["changed"], "an expired key is a new key"


async def test_an_erasure_forgets_the_stored_answers_that_mention_the_customer(ledger: RunningService) -> None:
    async with ledger.client() as api:
        for customer in ("C-ERASED", "C-KEPT"):
            made = await api.post(
                "/v1/customers", json={"id": customer, "name": "N"}, headers={IDEMPOTENCY_KEY: f"make-{customer}"}
            )
            assert made.status_code == 201, made.text
    async with ledger.runtime.sessions() as session, session.begin():
        assert await forget_idempotent_answers(session, orm.metadata, "acme", "C-ERASED") == 1
    remaining = await keys(ledger)
    assert "make-C-ERASED" not in remaining and "make-C-KEPT" in remaining
