"""The promise-to-pay page in a real headless chromium with JavaScript switched off: what a customer sees,
the keyboard order, labels, recording a promise and a plan, errors, and refused links."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from dunning_kit.clock import SimulatedClock
from dunning_kit.event_testing import LedgerFeed, start_producer
from dunning_kit.services import spec
from dunning_kit.signed_links import sign
from dunning_kit.testing import RunningService, start_service, wait_until_quiet

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None,
        reason=f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium)",
    ),
]


@pytest_asyncio.fixture
async def tracker(database_url: str, broker: Any, clock: SimulatedClock) -> AsyncIterator[RunningService]:
    svc = await start_service(
        spec("promise-tracker"),
        database_url=database_url,
        bootstrap_servers=broker.bootstrap_servers,
        clock=clock,
    )
    try:
        yield svc
    finally:
        await svc.stop()


@pytest_asyncio.fixture
async def seeded(tracker: RunningService, broker: Any, clock: SimulatedClock) -> RunningService:
    async with LedgerFeed(await start_producer(broker.bootstrap_servers), clock) as feed:
        await feed.customer("C-B", "Europe/Berlin", name="Brandt Maschinenbau GmbH")
        await feed.invoice("INV-2026-0101", "C-B", "4820.00")
        await feed.invoice("INV-2026-0102", "C-B", "180.00")
    await wait_until_quiet([tracker.runtime])
    return tracker


@pytest_asyncio.fixture
async def browser_page() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # No JavaScript: the page must work with plain HTML forms.
        context = await browser.new_context(java_script_enabled=False, locale="en-GB")
        page = await context.new_page()
        try:
            yield page
        finally:
            await browser.close()


def link(tracker: RunningService, clock: SimulatedClock, expires_in: timedelta = timedelta(days=14)) -> str:
    token = sign(
        tracker.runtime.settings.self_service_signing_key,
        {"tenant_id": "acme", "customer_id": "C-B", "invoice_ids": ["INV-2026-0101", "INV-2026-0102"]},
        clock.now() + expires_in,
    )
    return f"{tracker.runtime.settings.public_base_url}/self-service/promise?token={token}"


async def promises(tracker: RunningService) -> list[dict[str, Any]]:
    async with tracker.client() as api:
        return (await api.get("/v1/promises")).json()["items"]  # type: ignore[no-any-return]


async def focus_order(page: Any, stops: int) -> list[str]:
    """Ids of the elements Tab visits, in order (a date field's day/month/year parts count once)."""
    seen: list[str] = []
    for _ in range(stops):
        await page.keyboard.press("Tab")
        current = await page.evaluate("document.activeElement ? document.activeElement.id : ''")
        if current and (not seen or seen[-1] != current):
            seen.append(current)
    return seen


async def test_a_customer_promises_a_date_with_the_keyboard_and_without_javascript(
    seeded: RunningService, clock: SimulatedClock, browser_page: Any
) -> None:
    page = browser_page
    await page.goto(link(seeded, clock))
    assert await page.title() == "Your open invoices – Promise to pay"
    assert await page.locator("h1").inner_text() == "Promise to pay"
    assert await page.locator("h2").all_inner_texts() == ["Pay in full by a date", "Or ask to pay in instalments"]
    assert await page.get_by_role("group", name="Your open invoices").is_visible()
    first = page.get_by_label("Invoice 2026-0101, due 25 February 2026: EUR 4,820.00 open")
    assert await first.is_checked()
    # Every control has a label the browser associates with it.
    for control in await page.locator("input:not([type=hidden]), select").all():
        assert await control.evaluate("el => el.labels.length") == 1

    assert await focus_order(page, 14) == [
        "invoice-1", "invoice-2", "promised_date", "promise-submit", "instalment_count", "first_due_date",
        "plan-submit",
    ]  # fmt: skip

    await page.get_by_label("Invoice 2026-0102, due 25 February 2026: EUR 180.00 open").uncheck()
    await page.get_by_label("Date you will pay by").fill("2026-03-13")
    await page.get_by_role("button", name="Promise to pay by this date").click()
    await page.wait_for_load_state()
    assert await page.locator("h1").inner_text() == "Thank you – your promise is recorded"
    assert "EUR 4,820.00 by 13 March 2026" in await page.locator("main").inner_text()

    await wait_until_quiet([seeded.runtime])
    [recorded] = await promises(seeded)
    assert (recorded["recorded_by"], recorded["amount"], recorded["invoice_ids"]) == (
        "customer", "4820.00", ["INV-2026-0101"],
    )  # fmt: skip
    assert recorded["deadline"] == "2026-03-13T22:59:59+00:00", "end of the day in Berlin"


async def test_a_customer_requests_a_payment_plan(
    seeded: RunningService, clock: SimulatedClock, browser_page: Any
) -> None:
    page = browser_page
    await page.goto(link(seeded, clock))
    await page.get_by_label("Number of instalments").select_option("3")
    await page.get_by_label("Date of the first instalment").fill("2026-03-31")
    await page.get_by_role("button", name="Request a payment plan").click()
    await page.wait_for_load_state()
    assert await page.locator("h1").inner_text() == "Thank you – your payment plan is recorded"
    rows = await page.locator("tbody tr").all_inner_texts()
    assert [r.split("\t") for r in rows] == [
        ["31 March 2026", "EUR 1,666.68"], ["30 April 2026", "EUR 1,666.66"], ["31 May 2026", "EUR 1,666.66"],
    ]  # fmt: skip
    async with seeded.client() as api:
        [plan] = (await api.get("/v1/plans")).json()["items"]
    assert plan["recorded_by"] == "customer" and plan["total"] == "5000.00"


async def test_a_date_beyond_the_horizon_is_explained_and_focus_lands_on_the_error_summary(
    seeded: RunningService, clock: SimulatedClock, browser_page: Any
) -> None:
    page = browser_page
    await page.goto(link(seeded, clock))
    await page.get_by_label("Date you will pay by").fill("2026-06-30")
    await page.get_by_role("button", name="Promise to pay by this date").click()
    await page.wait_for_load_state()
    summary = page.get_by_role("alert")
    assert "There is a problem" in await summary.inner_text()
    assert await page.evaluate("document.activeElement.id") == "error-summary"
    assert await page.title() == "Error: Your open invoices – Promise to pay"
    date_field = page.get_by_label("Date you will pay by")
    assert await date_field.get_attribute("aria-invalid") == "true"
    assert await date_field.input_value() == "2026-06-30", "what the customer typed is kept"
    await summary.get_by_role("link").click()
    assert await page.evaluate("document.activeElement.id") == "promised_date"
    assert await promises(seeded) == []


async def test_expired_and_tampered_links_are_refused_and_nothing_is_written(
    seeded: RunningService, clock: SimulatedClock, browser_page: Any
) -> None:
    page = browser_page
    response = await page.goto(link(seeded, clock, expires_in=timedelta(seconds=-1)))
    assert response.status == 410
    assert await page.locator("h1").inner_text() == "This link has expired"
    assert await page.locator("form").count() == 0

    good = link(seeded, clock)
    tampered = good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")
    response = await page.goto(tampered)
    assert response.status == 403
    assert await page.locator("h1").inner_text() == "This link cannot be used"
    assert "Nothing has been recorded." in await page.locator("main").inner_text()

    # A page opened while the link was valid cannot be submitted after it expired.
    await page.goto(link(seeded, clock, expires_in=timedelta(hours=1)))
    await page.get_by_label("Date you will pay by").fill("2026-03-13")
    clock.advance(hours=2)
    await page.get_by_role("button", name="Promise to pay by this date").click()
    await page.wait_for_load_state()
    assert await page.locator("h1").inner_text() == "This link has expired"
    assert await promises(seeded) == []
