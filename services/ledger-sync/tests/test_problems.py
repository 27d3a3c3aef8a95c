"""Every error ledger-sync answers is an RFC 9457 problem (application/problem+json): the kit's statuses
(401, 403, 404, 413, 429, 500), a malformed body (400), invalid input (422, naming the fields), an unknown
invoice (404) and an ERP company another tenant connected (409). One service for the whole module."""

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
async def ledger(pg_backend: PostgresBackend) -> AsyncIterator[RunningService]:
    async with service_for_problem_tests("ledger-sync", pg_backend, SimulatedClock(SIM_START)) as svc:
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
