"""The dashboard and the portfolio against a real ledger-sync and insights: the figures and rows a page shows are
the ones insights answers, formatted per language (never through a float); filters go to insights and what it
refuses comes back next to the filter; a figure insights cannot answer blanks its panel only."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import insert

from dunning_kit.testing import PostgresBackend
from insights.adapters import orm as insights_orm
from workspace.domain import formats
from workspace.domain.people import Role
from workspace.testing import PEOPLE

from .pages_platform import PagesPlatform, pages_platform, tables, unlabelled

# One worker holds the module's platform (module-scoped) for all its tests, in file order.
pytestmark = pytest.mark.xdist_group("workspace-dashboard_and_portfolio")


@pytest_asyncio.fixture(scope="module")
async def stack(pg_backend: PostgresBackend) -> AsyncIterator[PagesPlatform]:
    async with pages_platform(pg_backend, ["ledger-sync", "insights"]) as running:
        await seed(running)
        yield running


async def seed(p: PagesPlatform) -> None:
    today = p.clock.now().date()
    async with p.api("ledger-sync") as api:
        for cid, name, segment in (("C-1", "Müller GmbH", "smb"), ("C-2", "Acme Corp", "enterprise")):
            r = await api.post(
                "/v1/customers",
                json={"id": cid, "name": name, "segment": segment, "email": f"{cid.lower()}@example.test"},
            )
            assert r.status_code == 201, r.text
        invoices = [  # id, customer, currency, total, days past due
            ("I-1", "C-1", "EUR", "1234.56", 45), ("I-2", "C-1", "EUR", "98765.40", 5), ("I-3", "C-2", "EUR", "310.00", -10),
            ("I-4", "C-2", "USD", "5000.00", 100), ("I-5", "C-2", "USD", "20.25", 62),
        ]  # fmt: skip
        for iid, cid, currency, total, late in invoices:
            due = today - timedelta(days=late)
            body = {
                "id": iid,
                "customer_id": cid,
                "number": f"RE-{iid}",
                "currency": currency,
                "total": total,
                "issue_date": (due - timedelta(days=30)).isoformat(),
                "due_date": due.isoformat(),
            }
            r = await api.post("/v1/invoices", json=body)
            assert r.status_code == 201, r.text
        r = await api.post("/v1/payments", json={"id": "P-1", "customer_id": "C-1", "currency": "EUR", "amount": "234.56",
                                                 "received_on": today.isoformat(),
                                                 "allocations": [{"invoice_id": "I-1", "amount": "234.56"}]})  # fmt: skip
        assert r.status_code == 201, r.text
    await p.quiet()


async def insights(p: PagesPlatform, path: str, **params: Any) -> Any:
    async with p.api("insights") as api:
        r = await api.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_the_dashboard_shows_insights_figures_as_charts_and_tables(stack: PagesPlatform) -> None:
    today = stack.clock.now().date()
    aging = await insights(stack, "/v1/figures/aging", as_of=today.isoformat())
    month = await insights(
        stack, "/v1/figures/collection", **{"from": today.replace(day=1).isoformat(), "to": today.isoformat()}
    )
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/")
    assert page.status_code == 200, page.text
    assert aging["rows"], "the seed leaves open invoices"
    for currency in ("EUR", "USD"):
        shown = tables(page.text, class_="aging", **{"data-currency": currency})[0].body
        expected = [r for r in aging["rows"] if r["currency"] == currency]
        assert [row[1:] for row in shown] == [
            [formats.money(r["amount"], currency, "en"), str(r["count"])] for r in expected
        ]
    assert "1,000.00\xa0EUR" in page.text  # I-1 after its payment, grouped in English
    totals = tables(page.text, id="totals")[0].body
    assert totals == [[r["currency"], *(formats.money(r[c], r["currency"], "en") for c in ("overdue", "due", "collected")),
                       formats.share(r["collection_rate"], "en"), formats.money(r["disputed"], r["currency"], "en")]
                      for r in month["rows"]]  # fmt: skip
    # Charts: SVG described for screen readers, one pattern per bar, values written on the chart.
    assert (
        page.text.count('role="img"') >= 4
        and 'id="aging-EUR-p4"' in page.text
        and '<title id="aging-EUR-title">' in page.text
    )
    # no inline script or style (the CSP allows neither): the one script is the service's own file
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/static/workspace.js" defer>']
    assert "style=" not in page.text


async def test_the_dso_and_cei_trends_are_the_monthly_series_insights_answers(stack: PagesPlatform) -> None:
    today = stack.clock.now().date()
    trend = {"from": "2025-04-01", "to": today.isoformat(), "interval": "month"}
    dso = await insights(stack, "/v1/figures/dso", **trend)
    cei = await insights(stack, "/v1/figures/cei", **trend)
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/")
    for key, column, answer in (("dso", "dso_standard", dso), ("cei", "cei", cei)):
        shown = tables(page.text, class_=key, **{"data-currency": "EUR"})[0].body
        expected = [r for r in answer["rows"] if r["currency"] == "EUR"]
        assert len(shown) == len(expected) >= 3  # the months with receivables
        assert shown == [[r["from"][:7], "–" if r[column] is None else formats.number(formats.as_decimal(r[column]), "en")]
                         for r in expected]  # fmt: skip


async def test_the_contacts_table_names_each_channel_once_with_the_months_sums(stack: PagesPlatform) -> None:
    """insights' contact figure is a series per day: two days of e-mails are one e-mail row, their counts added."""
    now = stack.clock.now()
    days = [now, now - timedelta(days=1)] if now.day > 1 else [now, now]
    tenant, insights_db = {"tenant_id": "acme"}, stack.services["insights"].runtime.engine
    async with insights_db.begin() as conn:
        await conn.execute(insert(insights_orm.deliveries), [
            {**tenant, "delivery_id": f"D-c{n}", "step_id": f"S-c{n}", "customer_id": "C-1", "channel": channel,
             "sent_at": at}
            for n, (channel, at) in enumerate([("email", days[0]), ("email", days[1]), ("email", days[1]), ("sms", days[0])])
        ])  # fmt: skip
        await conn.execute(insert(insights_orm.contact_holds), [
            {**tenant, "hold_key": f"H-c{n}", "channel": "email", "customer_id": "C-1", "held_on": at.date(),
             "rule": "quiet_hours"}
            for n, at in enumerate(days)
        ])  # fmt: skip
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/")
    assert page.status_code == 200, page.text
    assert sorted(tables(page.text, id="contacts")[0].body) == [["email", "3", "2"], ["sms", "1", "0"]]


async def test_the_dashboard_in_german_formats_money_the_german_way(stack: PagesPlatform) -> None:
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/", headers={"accept-language": "de"})
    assert page.status_code == 200
    assert "1.000,00\xa0EUR" in page.text and "98.765,40\xa0EUR" in page.text and "Altersstruktur" in page.text


async def test_filters_narrow_every_figure_and_a_refused_filter_shows_at_its_field(stack: PagesPlatform) -> None:
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        usd = await browser.get("/", params={"currency": "usd", "segment": "enterprise"})
        unknown = await browser.get("/", params={"segment": "no-such-segment"})
        bad = await browser.get("/", params={"currency": "EURO"})
    assert usd.status_code == 200
    assert tables(usd.text, class_="aging", **{"data-currency": "USD"}) and not tables(
        usd.text, class_="aging", **{"data-currency": "EUR"}
    )
    assert 'value="USD"' in usd.text and 'value="enterprise"' in usd.text
    assert unknown.status_code == 422
    assert (
        'id="f-segment-error"' in unknown.text
        and "no-such-segment" in unknown.text
        and 'aria-invalid="true"' in unknown.text
    )
    assert "could not be loaded" not in unknown.text  # insights answered: it refused the filter
    assert bad.status_code == 422 and 'id="f-currency-error"' in bad.text and 'value="EURO"' in bad.text


class FailingFigure(httpx.AsyncBaseTransport):
    """insights as the workspace reaches it, except that one figure answers 503."""

    def __init__(self, failing: str) -> None:
        self.failing = failing
        self.real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.failing:
            return httpx.Response(503, json={"title": "Service Unavailable"})
        return await self.real.handle_async_request(request)


async def test_a_figure_that_fails_blanks_its_panel_only(stack: PagesPlatform) -> None:
    platform = stack.workspace.runtime.objects.platform
    real = platform._http
    platform._http = httpx.AsyncClient(transport=FailingFigure("/v1/figures/cei"))
    try:
        browser, _ = await stack.browser(PEOPLE[Role.viewer])
        async with browser:
            page = await browser.get("/")
    finally:
        await platform._http.aclose()
        platform._http = real
    assert page.status_code == 200
    assert page.text.count("could not be loaded (insights did not answer)") == 1
    cei_panel = page.text.split('id="h-cei"')[1].split("</section>")[0]
    assert "could not be loaded" in cei_panel
    assert tables(page.text, class_="aging") and tables(page.text, class_="dso")


async def test_the_portfolio_lists_insights_open_invoices_in_its_order_a_page_at_a_time(stack: PagesPlatform) -> None:
    async with stack.api("insights") as api:
        answer = (await api.get("/v1/portfolio", params={"sort": "-days_overdue", "limit": 2})).json()
        second = (await api.get("/v1/portfolio", params={"sort": "-days_overdue", "limit": 2,
                                                         "cursor": answer["next_cursor"]})).json()  # fmt: skip
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        first = await browser.get("/portfolio", params={"sort": "-days_overdue", "limit": "2"})
        assert first.status_code == 200, first.text
        shown = tables(first.text, id="portfolio")[0].body
        assert [r[0] for r in shown] == [i["number"] for i in answer["items"]]
        assert [r[3] for r in shown] == [formats.money(i["balance"], i["currency"], "en") for i in answer["items"]]
        next_link = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
        assert next_link.startswith("/portfolio?") and "sort=-days_overdue" in next_link
        following = await browser.get(next_link)
        assert [r[0] for r in tables(following.text, id="portfolio")[0].body] == [i["number"] for i in second["items"]]
        assert '/customers/C-2"' in first.text  # each row opens its case
        refused = await browser.get("/portfolio", params={"segment": "nobody", "currency": "EUR"})
    assert refused.status_code == 422 and 'id="f-segment-error"' in refused.text and 'value="EUR"' in refused.text


async def test_a_case_shows_what_ledger_sync_knows_while_the_other_services_are_down(stack: PagesPlatform) -> None:
    browser, _ = await stack.browser(PEOPLE[Role.collector])
    async with browser:
        page = await browser.get("/customers/C-1")
    assert page.status_code == 200, page.text
    assert [r[0] for r in tables(page.text, id="invoices")[0].body] == ["RE-I-1", "RE-I-2"]
    for service in ("policy-engine", "notifier", "promise-tracker"):
        assert f"could not be loaded ({service} did not answer)" in page.text
    assert unlabelled(page.text) == []


async def test_every_form_control_of_the_pages_has_its_label(stack: PagesPlatform) -> None:
    browser, _ = await stack.browser(PEOPLE[Role.collector])
    async with browser:
        for path in ("/", "/portfolio", "/worklist", "/?segment=unknown"):
            page = await browser.get(path)
            assert unlabelled(page.text) == [], path


async def test_an_action_whose_service_is_down_comes_back_not_done_with_the_input_kept(stack: PagesPlatform) -> None:
    browser, signed = await stack.browser(PEOPLE[Role.collector])
    async with browser:
        r = await browser.post("/customers/C-1/pause", data={"csrf_token": signed.csrf_token, "reason": "on holiday"})
    assert r.status_code == 503
    form = r.text.split('id="pause"')[1].split("</form>")[0]
    assert "Not done: policy-engine did not answer" in form and 'value="on holiday"' in form
