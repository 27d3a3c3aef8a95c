"""The AR figures, FX and portfolio APIs through the HTTP app, on one service for the whole module: the kit's
problem statuses, JSON and the same rows as CSV, the defaults of the dates, bad input named by its query
field, FX rates with an Idempotency-Key and converted figures, the portfolio's pages, the AR gauges kept by
the runtime's timer, and typed OpenAPI."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest_asyncio
from prometheus_client import REGISTRY

from dunning_kit.clock import SimulatedClock
from dunning_kit.idempotency import HEADER as IDEMPOTENCY_KEY
from dunning_kit.openapi_check import unserved_app, untyped_operations
from dunning_kit.page_walk import assert_page_limits, walk_pages
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.testing import (
    MONA,
    PostgresBackend,
    RunningService,
    acting_as,
    assert_common_problems,
    assert_problem,
    poll_until,
    problem_fields,
    service_for_problem_tests,
)

from .ar_ledger import Ledger

CLOCK = SimulatedClock(SIM_START)
TODAY = SIM_START.date()
ADMIN = {"Authorization": "Bearer acme-admin-key"}


@pytest_asyncio.fixture(scope="module")
async def insights(pg_backend: PostgresBackend) -> AsyncIterator[RunningService]:
    async with service_for_problem_tests("insights", pg_backend, CLOCK) as svc:
        ledger = Ledger("acme")
        ledger.customer("C-1", "smb")
        ledger.customer("C-2", "enterprise")
        ledger.invoice("A", "C-1", "100.00", TODAY - timedelta(days=40), TODAY - timedelta(days=10))
        ledger.invoice("B", "C-2", "200.00", TODAY - timedelta(days=5), TODAY + timedelta(days=25))
        ledger.invoice("U", "C-1", "50.00", TODAY - timedelta(days=70), TODAY - timedelta(days=40), currency="USD")
        ledger.invoice("P", "C-2", "70.00", TODAY - timedelta(days=120), TODAY - timedelta(days=100))
        ledger.change("P", "payment", TODAY - timedelta(days=95), "70.00")
        async with svc.runtime.sessions() as session, session.begin():
            await ledger.write(session)
        yield svc


async def test_the_kit_statuses_are_problems(insights: RunningService) -> None:
    await assert_common_problems(insights, tenant_route="/v1/figures/aging", admin_route="/v1/fx-rates")


async def test_a_figure_is_json_or_the_same_rows_as_csv(insights: RunningService) -> None:
    async with insights.client() as api:
        aging = await api.get("/v1/figures/aging")
        assert aging.status_code == 200, aging.text
        body = aging.json()
        assert (body["figure"], body["as_of"], body["fx_rates_used"]) == ("aging", TODAY.isoformat(), [])
        assert [(r["currency"], r["bucket"], r["amount"], r["count"]) for r in body["rows"] if r["count"]] == [
            ("EUR", "current", "200.00", 1), ("EUR", "1-30", "100.00", 1), ("USD", "31-60", "50.00", 1)
        ]  # fmt: skip
        for exported in (await api.get("/v1/figures/aging", params={"format": "csv"}),
                         await api.get("/v1/figures/aging", headers={"Accept": "text/csv"})):  # fmt: skip
            assert exported.headers["content-type"].startswith("text/csv"), exported.headers
            table = list(csv.DictReader(io.StringIO(exported.text)))
            assert [dict(r) for r in table] == [{c: "" if v is None else str(v) for c, v in r.items()}
                                                for r in body["rows"]]  # fmt: skip


async def test_periods_default_to_the_90_days_up_to_today(insights: RunningService) -> None:
    async with insights.client() as api:
        dso = (await api.get("/v1/figures/dso", params={"currency": "EUR"})).json()
        assert (dso["from"], dso["to"]) == ((TODAY - timedelta(days=89)).isoformat(), TODAY.isoformat())
        # AR 300 against 90 days' sales of 300: 90 days; 200 of it not due: best possible 60, ADD 30.
        assert [(r["ar"], r["credit_sales"], r["days"], r["dso_standard"], r["best_possible_dso"], r["add"])
                for r in dso["rows"]] == [("300.00", "300.00", 90, "90.00", "60.00", "30.00")]  # fmt: skip
        by_segment = (await api.get("/v1/figures/collection", params=[("group_by", "segment")])).json()
        assert [(r["currency"], r["segment"], r["overdue"]) for r in by_segment["rows"]] == [
            ("EUR", "enterprise", "0.00"), ("EUR", "smb", "100.00"), ("USD", "smb", "50.00")
        ]  # fmt: skip
        weekly = (await api.get("/v1/figures/cei", params={"interval": "week", "from": "2026-02-18"})).json()
        assert {(r["from"], r["to"]) for r in weekly["rows"]} == {("2026-02-18", "2026-02-22"),
                                                                  ("2026-02-23", "2026-03-01"),
                                                                  ("2026-03-02", "2026-03-02")}  # fmt: skip


async def test_bad_input_is_named_by_its_query_field_and_an_empty_period_is_a_note(insights: RunningService) -> None:
    async with insights.client() as api:
        for params, field in [({"segment": "retail"}, "query.segment"), ({"customer_id": "C-404"}, "query.customer_id"),
                              ({"from": "2026-03-01", "to": "2026-02-01"}, "query.from"),
                              ({"group_by": "step"}, "query.group_by"), ({"interval": "day", "from": "2020-01-01"},
                                                                         "query.interval")]:  # fmt: skip
            refused = assert_problem(await api.get("/v1/figures/dso", params=params), 422)
            assert problem_fields(refused) == [field], (params, refused)
        unknown = (await api.get("/v1/figures/aging", params={"segment": "retail"})).json()
        assert "no customer of this tenant has segment 'retail'" in str(unknown)
        empty = await api.get("/v1/figures/collection", params={"from": "2020-01-01", "to": "2020-01-31"})
        assert empty.status_code == 200 and empty.json()["rows"] == [] and "nothing to show" in empty.json()["note"]


async def test_fx_rates_are_admins_idempotent_and_convert_figures(insights: RunningService) -> None:
    rates = {"reporting_currency": "EUR", "rates": [{"date": "2026-02-01", "currency": "USD", "rate": "0.9"},
                                                     {"date": "2026-03-01", "currency": "USD", "rate": "0.8"}]}  # fmt: skip
    async with insights.client() as api, insights.client("acme-admin-key") as admin:
        unset = assert_problem(await api.get("/v1/figures/aging", params={"convert": "true"}), 422)
        assert problem_fields(unset) == ["query.convert"] and "no reporting currency" in str(unset)
        assert_problem(await api.put("/v1/fx-rates", json=rates), 403)
        key = {IDEMPOTENCY_KEY: "rates-1"}
        saved = await admin.put("/v1/fx-rates", json=rates, headers=key)
        assert saved.status_code == 200 and saved.json() == {"reporting_currency": "EUR", "rates_saved": 2}
        again = await admin.put("/v1/fx-rates", json=rates, headers=key)
        assert (again.json(), again.headers.get("idempotent-replayed")) == (saved.json(), "true")
        for bad, field in [({"date": "2026-03-01", "currency": "EUR", "rate": "1"}, "rates.0.currency"),
                           ({"date": "2026-03-01", "currency": "USD", "rate": "0"}, "rates.0.rate"),
                           ({"date": "2026-03-01", "currency": "USD", "rate": "0.12345678901"}, "rates.0.rate")]:  # fmt: skip
            refused = assert_problem(await admin.put("/v1/fx-rates", json={"reporting_currency": "EUR",
                                                                            "rates": [bad]}), 422)  # fmt: skip
            assert field in problem_fields(refused), refused
        listed = (await admin.get("/v1/fx-rates")).json()
        assert [(r["currency"], r["date"], r["rate"]) for r in listed["items"]] == [
            ("USD", "2026-02-01", "0.9"), ("USD", "2026-03-01", "0.8")]  # fmt: skip

        converted = (await api.get("/v1/figures/aging", params={"convert": "true"})).json()
        assert converted["reporting_currency"] == "EUR"
        assert converted["fx_rates_used"] == [{"currency": "USD", "quote_currency": "EUR", "rate_date": "2026-03-01",
                                               "rate": "0.8"}]  # fmt: skip
        assert [(r["currency"], r["bucket"], r["amount"]) for r in converted["rows"] if r["count"]] == [
            ("EUR", "current", "200.00"), ("EUR", "1-30", "100.00"), ("EUR", "31-60", "40.00")]  # fmt: skip
        too_early = assert_problem(await api.get("/v1/figures/aging", params={"convert": "true",
                                                                              "as_of": "2026-01-31"}), 422)  # fmt: skip
        assert problem_fields(too_early) == ["query.convert"] and "2026-01-31" in str(too_early)


async def test_the_portfolio_pages_open_invoices(insights: RunningService) -> None:
    async with insights.client() as api:
        pages = await walk_pages(api.get, "/v1/portfolio", limit=2)
        assert [i["invoice_id"] for page in pages for i in page] == ["B", "A", "U"]
        overdue = (await api.get("/v1/portfolio", params={"bucket": "1-30"})).json()["items"]
        assert [(i["invoice_id"], i["days_overdue"], i["customer_name"], i["segment"]) for i in overdue] == [
            ("A", 10, "C-1", "smb")]  # fmt: skip
        other = (await api.get("/v1/portfolio", params={"limit": 1, "sort": "due_date"})).json()["next_cursor"]
        await assert_page_limits(api.get, "/v1/portfolio", other_list_cursor=other)
        assert problem_fields(assert_problem(await api.get("/v1/portfolio", params={"segment": "x"}), 422)) == [
            "query.segment"]  # fmt: skip


async def test_the_ar_gauges_are_refreshed_by_the_runtime_timer(insights: RunningService) -> None:
    assert "insights-gauges" in [t.name for t in insights.runtime.timers]
    CLOCK.advance(seconds=61)  # past the refresh interval, whatever the timer saw at the start

    async def sample(name: str, currency: str) -> Any:
        return REGISTRY.get_sample_value(name, {"tenant": "acme", "currency": currency})

    assert await poll_until(lambda: sample("dunning_insights_overdue_amount", "USD"), what="the gauge") == 50.0
    assert await sample("dunning_insights_overdue_amount", "EUR") == 100.0
    assert await sample("dunning_insights_dso_days", "EUR") == 90.0


async def test_every_operation_declares_its_request_and_response_schemas() -> None:
    assert untyped_operations(await unserved_app("insights")) == []


async def test_fx_rates_saved_for_a_person_are_audited_and_a_refused_person_saves_none(
    insights: RunningService,
) -> None:
    """Who acted (`Dunning-Actor`): insights keeps the audit log like the other services."""
    rates = {"reporting_currency": "EUR", "rates": [{"date": "2026-02-02", "currency": "GBP", "rate": "1.1"}]}
    async with insights.client("acme-admin-key") as admin:
        stale = acting_as(MONA, CLOCK, at=CLOCK.now() - timedelta(minutes=6))
        assert problem_fields(assert_problem(await admin.put("/v1/fx-rates", json=rates, headers=stale), 401)) == [
            "Dunning-Actor"
        ]
        assert "GBP" not in {r["currency"] for r in (await admin.get("/v1/fx-rates")).json()["items"]}
        saved = await admin.put("/v1/fx-rates", json=rates, headers=acting_as(MONA, CLOCK))
        assert saved.status_code == 200, saved.text
        (entry,) = (await admin.get("/v1/audit-log", params={"person": "mona"})).json()["items"]
    assert (entry["method"], entry["route"], entry["actor"]["name"], entry["outcome"]) == (
        "PUT", "/v1/fx-rates", "Mona Manager", "applied",
    )  # fmt: skip
