"""The activity figures through HTTP, on one insights for the module: JSON and CSV of the same rows, the default
period, and bad input (a grouping the figure does not have, an unknown segment or customer, conversion) answered
as problems naming the query field; an empty period is a 200 that says why."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest_asyncio
from sqlalchemy import insert

from dunning_kit.clock import SimulatedClock
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.testing import (
    PostgresBackend,
    RunningService,
    assert_problem,
    problem_fields,
    service_for_problem_tests,
)
from insights.adapters import orm

CLOCK = SimulatedClock(SIM_START)
TODAY = SIM_START.date()


@pytest_asyncio.fixture(scope="module")
async def insights(pg_backend: PostgresBackend) -> AsyncIterator[RunningService]:
    """insights with one step of acme sent 3 days ago to two invoices (100 paid the next day, 50 open), delivered
    by email, and one kept promise; globex has nothing."""
    async with service_for_problem_tests("insights", pg_backend, CLOCK) as svc:
        sent_on = TODAY - timedelta(days=3)
        tenant = {"tenant_id": "acme"}
        async with svc.runtime.engine.begin() as conn:
            await conn.execute(insert(orm.customers), [{**tenant, "customer_id": "C-1", "segment": "smb"}])
            await conn.execute(insert(orm.steps), [{
                **tenant, "step_id": "S-1", "customer_id": "C-1", "policy_id": "standard", "policy_version": 1,
                "step_index": 0, "step_name": "reminder", "tone": "friendly", "currency": "EUR",
                "amount_due": Decimal(150), "channels": ["email"], "due_at": datetime.combine(sent_on, SIM_START.timetz()),
                "sent_on": sent_on,
            }])  # fmt: skip
            await conn.execute(insert(orm.step_invoices), [
                {**tenant, "step_id": "S-1", "invoice_id": "I-1", "balance": Decimal(100)},
                {**tenant, "step_id": "S-1", "invoice_id": "I-2", "balance": Decimal(50)},
            ])  # fmt: skip
            await conn.execute(insert(orm.invoice_changes), [{
                **tenant, "invoice_id": "I-1", "change_key": "payment:P-1", "kind": "payment",
                "on_date": sent_on + timedelta(days=1), "amount": Decimal(-100),
            }])  # fmt: skip
            await conn.execute(insert(orm.deliveries), [{
                **tenant, "delivery_id": "D-1", "step_id": "S-1", "customer_id": "C-1", "channel": "email",
                "sent_at": datetime.combine(sent_on, SIM_START.timetz()), "delivered_at": datetime.combine(sent_on, SIM_START.timetz()),
            }])  # fmt: skip
            await conn.execute(insert(orm.promises), [{
                **tenant, "promise_id": "PR-1", "customer_id": "C-1", "invoice_ids": ["I-2"], "currency": "EUR",
                "amount": Decimal(50), "received": Decimal(50), "promised_date": TODAY, "recorded_by": "collector",
                "created_at": datetime(2026, 2, 20, tzinfo=UTC), "status": "kept",
            }])  # fmt: skip
        yield svc


async def test_step_figures_answer_json_over_the_default_period(insights: RunningService) -> None:
    async with insights.client() as api:
        response = await api.get("/v1/figures/steps")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["figure"], body["from"], body["to"]) == ("steps", str(TODAY - timedelta(days=89)), str(TODAY))
    assert body["rows"] == [{
        "policy_id": "standard", "step_name": "reminder", "currency": "EUR", "steps": 1, "sent": 1, "delivered": 1,
        "bounced": 0, "failed": 0, "opted_out": 0, "invoices": 2, "amount": "150.00",
        "paid_3d_amount_share": "0.6667", "paid_7d_amount_share": "0.6667", "paid_14d_amount_share": "0.6667",
        "paid_3d_invoice_share": "0.0000", "paid_7d_invoice_share": "0.0000", "paid_14d_invoice_share": "0.0000",
        "median_days_to_pay": None,
    }]  # fmt: skip
    assert body["columns"] == list(body["rows"][0])


async def test_the_csv_export_has_the_same_rows(insights: RunningService) -> None:
    async with insights.client() as api:
        by_query = await api.get("/v1/figures/promises", params={"format": "csv", "group_by": "segment"})
        by_accept = await api.get("/v1/figures/contacts", headers={"Accept": "text/csv"},
                                  params={"from": str(TODAY - timedelta(days=3)), "to": str(TODAY)})  # fmt: skip
    assert by_query.status_code == 200 and by_query.headers["content-type"].startswith("text/csv")
    promises = list(csv.DictReader(io.StringIO(by_query.text)))
    assert [(r["segment"], r["currency"], r["made"], r["kept_rate"], r["amount_received"]) for r in promises] == [
        ("smb", "EUR", "1", "1.0000", "50.00")
    ]
    contacts = list(csv.DictReader(io.StringIO(by_accept.text)))
    assert [(r["period_start"], r["channel"], r["sent"]) for r in contacts] == [
        (str(TODAY - timedelta(days=n)), "email", "1" if n == 3 else "0") for n in (3, 2, 1, 0)
    ]


async def test_bad_queries_are_problems_naming_the_query_field(insights: RunningService) -> None:
    async with insights.client() as api:
        grouping = assert_problem(await api.get("/v1/figures/promises", params={"group_by": "step"}), 422)
        contacts = assert_problem(await api.get("/v1/figures/contacts", params={"group_by": "segment"}), 422)
        segment = assert_problem(await api.get("/v1/figures/steps", params={"segment": "government"}), 422)
        customer = assert_problem(await api.get("/v1/figures/promises", params={"customer_id": "C-404"}), 422)
        convert = assert_problem(await api.get("/v1/figures/steps", params={"convert": "true"}), 422)
        dates = assert_problem(await api.get("/v1/figures/steps", params={"from": str(TODAY + timedelta(1))}), 422)
        far = assert_problem(await api.get("/v1/figures/steps", params={"to": "9999-12-31"}), 422)
        daily = assert_problem(await api.get("/v1/figures/contacts", params={"from": "2000-01-01"}), 422)
    assert problem_fields(grouping) == problem_fields(contacts) == ["query.group_by"]
    assert "segment" in contacts["errors"][0]["reason"]
    assert problem_fields(segment) == ["query.segment"] and "government" in segment["errors"][0]["reason"]
    assert problem_fields(customer) == ["query.customer_id"]
    assert problem_fields(convert) == ["query.convert"]
    assert problem_fields(dates) == ["query.from"]
    assert problem_fields(far) == ["query.to"]
    assert problem_fields(daily) == ["query.interval"]  # contacts are daily unless asked otherwise


async def test_an_empty_period_is_a_200_with_a_note_and_another_tenant_sees_nothing(insights: RunningService) -> None:
    async with insights.client() as api, insights.client("globex-api-key") as globex, insights.client(None) as anon:
        past = await api.get("/v1/figures/steps", params={"from": "2025-01-01", "to": "2025-01-31", "interval": "week"})
        other = await globex.get("/v1/figures/promises")
        assert_problem(await anon.get("/v1/figures/contacts"), 401)
    for response in (past, other):
        assert response.status_code == 200, response.text
        assert response.json()["rows"] == [] and response.json()["note"]
    assert past.json()["interval"] == "week" and past.json()["columns"][:2] == ["period_start", "period_end"]
