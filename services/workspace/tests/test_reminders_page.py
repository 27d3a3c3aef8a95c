"""The case's "send a reminder now" against the real ledger-sync and policy engine (one platform for the module): a
collector's reminder goes out and the case says what went out; one the contact rules refuse comes back (422) with the
rule's reason at the form, the input kept and, for a time rule, from when it is possible; a viewer sees no form and a
viewer's POST is refused with nothing sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from dunning_kit.testing import PostgresBackend
from workspace.domain.people import Role
from workspace.testing import PEOPLE

from .pages_platform import PagesPlatform, pages_platform, unlabelled

pytestmark = pytest.mark.xdist_group("workspace-reminders_page")

BERLIN = ZoneInfo("Europe/Berlin")


@pytest_asyncio.fixture(scope="module")
async def stack(pg_backend: PostgresBackend) -> AsyncIterator[PagesPlatform]:
    async with pages_platform(pg_backend, ["ledger-sync", "policy-engine"]) as running:
        today = running.clock.now().date()  # Monday 2026-03-02, 09:00 UTC (10:00 in Berlin)
        async with running.api("ledger-sync") as api:
            for cid in ("C-1", "C-2"):
                r = await api.post("/v1/customers", json={"id": cid, "name": f"Kunde {cid}", "time_zone": "Europe/Berlin",
                                                          "email": f"{cid.lower()}@example.test"})  # fmt: skip
                assert r.status_code == 201, r.text
            for iid, cid in (("I-1", "C-1"), ("I-2", "C-1"), ("I-3", "C-2")):
                body = {"id": iid, "customer_id": cid, "number": f"RE-{iid}", "currency": "EUR", "total": "400.00",
                        "issue_date": (today - timedelta(days=30)).isoformat(),
                        "due_date": (today + timedelta(days=20)).isoformat()}  # fmt: skip
                assert (await api.post("/v1/invoices", json=body)).status_code == 201
        await running.quiet()
        async with running.api("policy-engine") as engine:
            assert (await engine.put("/v1/customers/C-2/dunning-block", json={"reason": "in talks"})).status_code == 200
        yield running


async def one_offs(stack: PagesPlatform, cid: str) -> list[dict[str, Any]]:
    async with stack.api("policy-engine") as api:
        r = await api.get(f"/v1/customers/{cid}/timeline", params={"limit": 500})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["step"] == "one_off_reminder"]


async def test_a_viewer_sees_no_reminder_form_and_a_viewers_post_sends_nothing(stack: PagesPlatform) -> None:
    browser, signed = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/customers/C-1")
        refused = await browser.post("/customers/C-1/remind", data={"csrf_token": signed.csrf_token})
    assert page.status_code == 200 and 'action="/customers/C-1/remind"' not in page.text
    assert refused.status_code == 403
    assert await one_offs(stack, "C-1") == []


async def test_a_collector_sends_a_reminder_now_and_the_case_says_what_went_out(stack: PagesPlatform) -> None:
    browser, signed = await stack.browser(PEOPLE[Role.collector])
    async with browser:
        page = await browser.get("/customers/C-1", headers={"accept-language": "de"})
        assert "Jetzt eine Erinnerung senden" in page.text and unlabelled(page.text) == []
        form = {
            "csrf_token": signed.csrf_token,
            "channel": "",
            "invoice_ids": ["I-1", "I-2"],
            "idempotency_key": "k-r1",
        }
        sent = await browser.post("/customers/C-1/remind", data=form)
        again = await browser.post("/customers/C-1/remind", data=form)  # a double click: the same key
        after = await browser.get(sent.headers.get("location", "/"))
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == "/customers/C-1?done=remind&channel=email&invoices=2#remind"
    assert again.status_code == 303
    assert "A reminder went out by Email about 2 invoice(s)." in after.text
    entries = await one_offs(stack, "C-1")
    assert {e["invoice_id"] for e in entries} == {"I-1", "I-2"} and len(entries) == 2  # once, not twice
    assert entries[0]["detail"]["actor"]["name"] == PEOPLE[Role.collector].name


async def test_a_reminder_the_rules_refuse_comes_back_with_the_reason_and_when_it_is_possible(
    stack: PagesPlatform,
) -> None:
    browser, signed = await stack.browser(PEOPLE[Role.collector])
    async with browser:
        paused = await browser.post("/customers/C-2/remind", data={"csrf_token": signed.csrf_token, "channel": "letter",
                                                                   "invoice_ids": ["I-3"]})  # fmt: skip
    stack.clock.set(datetime(2026, 3, 2, 21, 30, tzinfo=BERLIN))  # quiet hours in the debtor's time
    await stack.quiet()
    browser, signed = await stack.browser(PEOPLE[Role.collector])  # signed in anew: hours later
    async with browser:
        late = await browser.post("/customers/C-1/remind", data={"csrf_token": signed.csrf_token, "channel": "sms"},
                                  headers={"accept-language": "de"})  # fmt: skip
    assert paused.status_code == 422, paused.text
    form = paused.text.split('id="remind"')[1].split("</form>")[0]
    assert "Not sent now: invoice RE-I-3 is paused: the customer has a dunning block." in form
    assert 'value="letter" selected' in form and 'value="I-3" checked' in form  # the input kept
    assert "Possible from" not in form
    assert late.status_code == 422, late.text
    form = late.text.split('id="remind"')[1].split("</form>")[0]
    assert "outside the debtor&#39;s contact window" in form and "Möglich ab 03.03.2026 07:00 UTC." in form
    assert await one_offs(stack, "C-2") == []
