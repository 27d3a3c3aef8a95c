"""A day in the workspace, in Debian's chromium, on the real stack in processes (every service, PostgreSQL, the
broker, the development identity provider) and a shared simulated clock:

- a collector signs in, sees the dashboard, takes the top worklist item, opens the case, logs a conversation with
  a promise; the policy engine pauses the case; the clock moves past the promise, it breaks, and the case comes
  back onto the worklist (ten days on, the session has ended: the worklist sends to sign-in and back to it);
- a manager edits a policy, sees the preview of the draft and publishes it;
- an admin replays a dead letter;
- a viewer sees no action and is refused one sent anyway; a form without the session's CSRF token is refused;
- every page visited has no axe-core violation of impact serious or critical.

`make screenshots` runs this module with WORKSPACE_SCREENSHOTS set, and the pages are kept as docs/screenshots.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from dunning_events import topics
from dunning_events.codec import encode
from dunning_events.events import PromiseCreated
from dunning_events.examples import example_event
from dunning_events.topics import dead_letter_topic, partition_key
from dunning_kit.event_testing import start_producer
from dunning_kit.testing import poll_until
from tests.browser.workspace_browser import accessible, signed_in
from tests.process_platform import ProcessPlatform, running_platform

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
ADMIN_KEY = {"Authorization": "Bearer dev-acme-admin"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"chromium is not installed at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessPlatform]:
    with running_platform(tmp_path_factory.mktemp("workspace-day"), {}) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def seeded(platform: ProcessPlatform) -> ProcessPlatform:
    """Through the public APIs: a policy whose one step is a collector task on the due date, a customer with an
    invoice due today; then 10:00 passes and the task is made."""
    async with httpx.AsyncClient(base_url=platform.url("policy-engine"), headers=ADMIN_KEY, timeout=30) as admin:
        base = (await admin.get("/v1/policies/default")).json()
        call = {"name": "call_debtor", "offset_days": 0, "channels": ["task"], "template_id": "escalation_call",
                "tone": "urgent"}  # fmt: skip
        doc = {k: v for k, v in base.items() if k != "version"} | {"steps": [call]}
        assert (await admin.put("/v1/policies/default", json=doc)).status_code == 200
    today = platform.now.date()
    async with httpx.AsyncClient(base_url=platform.url("ledger-sync"), headers=ADMIN_KEY, timeout=30) as ledger:
        customer = {"id": "C-1", "name": "Brandt Maschinenbau GmbH", "email": "ap@brandt.example"}
        assert (await ledger.post("/v1/customers", json=customer)).status_code == 201
        invoice = {"id": "INV-1", "customer_id": "C-1", "number": "2026-0101", "currency": "EUR", "total": "1200.00",
                   "issue_date": (today - timedelta(days=30)).isoformat(), "due_date": today.isoformat()}  # fmt: skip
        assert (await ledger.post("/v1/invoices", json=invoice)).status_code == 201
    await platform.quiet()
    platform.advance(hours=2)

    async def task_made() -> bool:
        async with httpx.AsyncClient(base_url=platform.url("notifier"), headers=ADMIN_KEY, timeout=30) as api:
            return bool((await api.get("/v1/tasks", params={"status": "open"})).json()["items"])

    await poll_until(task_made, timeout=60, what="the collector task of the due date")
    return platform


@pytest_asyncio.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def submit(page: Page, button: str) -> None:
    async with page.expect_navigation():
        await page.click(f"button:has-text('{button}')")


async def dunning_state(platform: ProcessPlatform) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=platform.url("policy-engine"), headers=ADMIN_KEY, timeout=30) as api:
        state: dict[str, Any] = (await api.get("/v1/invoices/INV-1/dunning")).json()
    return state


async def test_a_collector_works_the_top_item_and_a_broken_promise_brings_it_back(
    seeded: ProcessPlatform, chromium: Browser
) -> None:
    platform = seeded
    page = await signed_in(chromium, platform, "colin")
    assert await page.locator("h1").first.inner_text() == "Dashboard"
    await accessible(page, "dashboard")

    await page.click("nav >> text=Worklist")
    await page.wait_for_load_state()
    await accessible(page, "worklist")
    async with page.expect_navigation():
        await page.locator("main a[href^='/customers/']").first.click()
    assert page.url.endswith("/customers/C-1")
    await accessible(page, "case")

    promised = platform.now.date() + timedelta(days=3)
    form = page.locator("form#call")
    await form.locator("input[value='conversation']").check()
    await form.locator("input[name='invoice_ids']").first.check()
    await form.locator("textarea[name='note']").fill("Will pay in three days.")
    await form.locator("input[name='promise_amount']").fill("1200.00")
    await form.locator("input[name='promised_date']").fill(promised.isoformat())
    await submit(page, "Log the call")
    assert "The call is logged." in await page.inner_text("main")

    await platform.quiet()
    assert "promise" in (await dunning_state(platform))["paused_by"]  # the policy engine paused the case
    await page.reload()
    text = await page.inner_text("main")
    assert "Colin Collector" in text and "conversation" in text, text[-3000:]  # the call on the case's timeline

    platform.advance(days=10)  # past the promised date and its grace days: the promise breaks, unpaid
    await platform.quiet()

    # Ten days later the session has ended: the worklist sends to sign-in, and back to the worklist after it.
    worklist = platform.url("workspace") + "/worklist?kind=broken_promise"
    await page.goto(worklist)
    assert await page.locator("input[name=password]").count() == 1, page.url
    await page.fill("input[name=username]", "colin")
    await page.fill("input[name=password]", "colin-dev")
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert page.url == worklist
    assert "C-1" in await page.inner_text("main")  # the broken promise brought the case back
    assert "promise" not in (await dunning_state(platform))["paused_by"]


async def test_a_manager_previews_a_draft_policy_and_publishes_it(seeded: ProcessPlatform, chromium: Browser) -> None:
    page = await signed_in(chromium, seeded, "mona", "/policies/default")
    await accessible(page, "policy")
    draft = await page.input_value("#draft")
    await page.fill("#draft", draft.replace("offset_days: 0", "offset_days: 1", 1))
    await submit(page, "Preview the draft")
    assert "Preview of the draft of default" in await page.inner_text("h1")
    await accessible(page, "policy-preview")
    await submit(page, "Publish as version")
    assert "was published and is now in force" in await page.inner_text("main")
    async with httpx.AsyncClient(base_url=seeded.url("policy-engine"), headers=ADMIN_KEY, timeout=30) as api:
        versions = (await api.get("/v1/policies/default/versions")).json()["items"]
    assert versions[-1]["author"]["name"] == "Mona Manager"  # the person, through the actor header


async def test_an_admin_replays_a_dead_letter(seeded: ProcessPlatform, chromium: Browser) -> None:
    group = "promise-tracker.ledger"
    producer = await start_producer(seeded.stack.bootstrap_servers())
    try:
        event = example_event(PromiseCreated.event_type).model_copy(update={"id": uuid.uuid4()})
        attributes, value = encode(event)
        headers = [*attributes, ("dlq-error", b"KeyError: 'due_date'"), ("dlq-source-topic", topics.PROMISES.encode())]
        key = partition_key(event.tenant_id, "C-1").encode()
        await producer.send_and_wait(dead_letter_topic(group), value, key=key, headers=headers)
    finally:
        await producer.stop()
    page = await signed_in(chromium, seeded, "adam", "/operations")
    assert "KeyError: 'due_date'" in await page.inner_text("main")
    await accessible(page, "operations")
    await submit(page, f"Replay all waiting of {group}")
    assert "1 dead letter(s) sent back" in await page.inner_text("main")


async def test_a_viewer_cannot_act_and_a_form_without_its_token_is_refused(
    seeded: ProcessPlatform, chromium: Browser
) -> None:
    page = await signed_in(chromium, seeded, "vera", "/customers/C-1")
    assert await page.locator("form#call").count() == 0
    token = await page.locator("form[action='/sign-out'] input[name=csrf_token]").input_value()
    url = seeded.url("workspace") + "/customers/C-1/pause"
    refused = await page.request.post(url, form={"csrf_token": token, "reason": "viewer tries"})
    assert refused.status == 403
    colin = await signed_in(chromium, seeded, "colin", "/customers/C-1")
    no_token = await colin.request.post(url, form={"reason": "forged"})
    assert no_token.status == 403 and "Form expired" in await no_token.text()
    await accessible(await signed_in(chromium, seeded, "mona", "/templates/due_date_notice"), "template")
