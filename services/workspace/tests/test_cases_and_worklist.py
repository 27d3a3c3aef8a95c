"""The case view and the worklist against the five real services (one platform for the module, seeded through
their public APIs): the rows a page shows are what the services answer; a collector's forms change the service
that owns the change, and what it refuses comes back next to the field with the input kept; a viewer sees no
forms and a viewer's POST is refused with nothing done; the worklist ranks what needs a person."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from markupsafe import escape

from dunning_kit.testing import PostgresBackend, poll_until
from ledger_sync.devfakes.quickbooks import FakeQuickBooks
from ledger_sync.devfakes.server import serving
from workspace.domain import formats
from workspace.domain.people import Role
from workspace.testing import PEOPLE

from .pages_platform import PagesPlatform, pages_platform, tables, unlabelled

# One worker holds the module's platform (module-scoped) for all its tests, in file order.
pytestmark = pytest.mark.xdist_group("workspace-cases_and_worklist")

FIVE = ["ledger-sync", "policy-engine", "notifier", "promise-tracker", "insights"]


@pytest_asyncio.fixture(scope="module")
async def stack(pg_backend: PostgresBackend) -> AsyncIterator[PagesPlatform]:
    async with pages_platform(pg_backend, FIVE) as running:
        await seed(running)
        yield running


async def seed(p: PagesPlatform) -> None:
    today = p.clock.now().date()  # Monday 2026-03-02, 09:00 UTC
    async with p.api("policy-engine") as admin:
        base = (await admin.get("/v1/policies/default")).json()
        # One step: a collector task on the due date (every case here but C-3 gets a task, no email goes out).
        call = {"name": "call_debtor", "offset_days": 0, "channels": ["task"], "template_id": "escalation_call",
                "tone": "urgent"}  # fmt: skip
        doc = {k: v for k, v in base.items() if k != "version"} | {"steps": [call]}
        r = await admin.put("/v1/policies/default", json=doc)
        assert r.status_code == 200, r.text
        # C-3 (assigned; the policy tried after the default for everyone else) has no email address: the email on
        # its due date fails, a message the worklist shows.
        mail = {"name": "mail_notice", "offset_days": 0, "channels": ["email"], "template_id": "due_date_notice",
                "tone": "neutral"}  # fmt: skip
        r = await admin.put(
            "/v1/policies/mail", json=doc | {"id": "mail", "name": "Mail", "steps": [mail], "priority": 5000}
        )
        assert r.status_code in (200, 201), r.text
        r = await admin.put("/v1/assignments/customers/C-3", json={"policy_id": "mail"})
        assert r.status_code == 200, r.text
    async with p.api("ledger-sync") as api:
        for cid, name in (("C-1", "Müller GmbH"), ("C-2", "Acme Corp")):
            r = await api.post("/v1/customers", json={"id": cid, "name": name, "email": f"{cid.lower()}@example.test"})
            assert r.status_code == 201, r.text
        assert (await api.post("/v1/customers", json={"id": "C-3", "name": "No Mail Ltd"})).status_code == 201
        for iid, cid, currency, total in (("I-1", "C-1", "EUR", "1200.00"), ("I-2", "C-1", "EUR", "300.00"),
                                          ("I-3", "C-2", "USD", "5000.00"), ("I-4", "C-3", "EUR", "80.00")):  # fmt: skip
            body = {"id": iid, "customer_id": cid, "number": f"RE-{iid}", "currency": currency, "total": total,
                    "issue_date": (today - timedelta(days=30)).isoformat(), "due_date": today.isoformat()}  # fmt: skip
            r = await api.post("/v1/invoices", json=body)
            assert r.status_code == 201, r.text
    await p.quiet()
    p.clock.advance(timedelta(hours=2))  # past the 10:00 send time: the tasks are made

    async def made() -> bool:
        async with p.api("notifier") as api:
            tasks = (await api.get("/v1/tasks")).json()["items"]
            failed = (await api.get("/v1/deliveries", params={"status": "failed"})).json()["items"]
        return len(tasks) == 2 and len(failed) == 1

    await poll_until(made, timeout=30, what="a collector task for C-1 and C-2, a failed email for C-3")
    await p.quiet()


async def api_items(p: PagesPlatform, service: str, path: str, **params: Any) -> list[dict[str, Any]]:
    async with p.api(service) as api:
        r = await api.get(path, params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_the_case_shows_what_each_service_answers(stack: PagesPlatform) -> None:
    invoices = await api_items(stack, "ledger-sync", "/v1/invoices", customer_id="C-1")
    deliveries = await api_items(stack, "notifier", "/v1/deliveries", customer_id="C-1")
    timeline = await api_items(stack, "policy-engine", "/v1/customers/C-1/timeline")
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/customers/C-1")
        missing = await browser.get("/customers/C-404")
    assert page.status_code == 200, page.text
    assert "Müller GmbH" in page.text and "1,500.00\xa0EUR" in page.text  # the open balance
    shown = tables(page.text, id="invoices")[0].body
    assert [(r[0], r[2]) for r in shown] == [
        (i["number"], formats.money(i["balance"], i["currency"], "en")) for i in invoices
    ]
    assert deliveries and len(tables(page.text, id="deliveries")[0].body) == len(deliveries)
    assert timeline and len(tables(page.text, id="timeline")[0].body) == len(timeline)
    assert missing.status_code == 404 and "C-404" in missing.text


async def test_a_viewer_sees_no_forms_and_a_viewers_post_changes_nothing(stack: PagesPlatform) -> None:
    browser, signed = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/customers/C-2")
        refused = await browser.post("/customers/C-2/pause", data={"csrf_token": signed.csrf_token, "reason": "viewer"})
    assert 'action="/customers/C-2/pause"' not in page.text and 'action="/customers/C-2/promise"' not in page.text
    assert refused.status_code == 403 and "Not allowed" in refused.text
    timeline = await api_items(stack, "policy-engine", "/v1/customers/C-2/timeline")
    assert all("viewer" not in (e.get("reason") or "") for e in timeline)


async def test_a_refused_promise_comes_back_at_its_field_with_the_input_kept_then_records(stack: PagesPlatform) -> None:
    promised = (stack.clock.now().date() + timedelta(days=7)).isoformat()
    browser, signed = await stack.browser(PEOPLE[Role.collector])
    async with browser:
        page = await browser.get("/customers/C-1")
        assert 'action="/customers/C-1/promise"' in page.text
        form = {"csrf_token": signed.csrf_token, "invoice_ids": ["I-1"], "amount": "12.345", "promised_date": promised,
                "note": "called, pays next week", "idempotency_key": "k-promise-1"}  # fmt: skip
        wrong = await browser.post("/customers/C-1/promise", data=form)
        right = await browser.post("/customers/C-1/promise", data=form | {"amount": "250.00"})
        again = await browser.post("/customers/C-1/promise", data=form | {"amount": "250.00"})  # a double click
        after = await browser.get(right.headers.get("location", "/"))
    assert wrong.status_code == 422, wrong.text
    promise_form = wrong.text.split('id="promise"')[1].split("</form>")[0]
    assert 'id="f-promise-amount-error"' in promise_form and 'aria-invalid="true"' in promise_form
    assert 'value="12.345"' in promise_form and f'value="{promised}"' in promise_form
    assert "called, pays next week" in promise_form and 'value="I-1" checked' in promise_form
    assert right.status_code == 303 and right.headers["location"].startswith("/customers/C-1?done=promise")
    assert again.status_code == 303  # the form's Idempotency-Key: promise-tracker answers the first promise again
    (recorded,) = await api_items(stack, "promise-tracker", "/v1/promises", customer_id="C-1")
    assert (
        recorded["amount"] == "250.00" and recorded["recorded_by"] == "collector" and recorded["invoice_ids"] == ["I-1"]
    )
    assert "The promise is recorded." in after.text
    assert tables(after.text, id="promises")[0].body[0][1] == "250.00\xa0EUR"


async def test_a_plan_agreed_in_german_takes_german_amounts(stack: PagesPlatform) -> None:
    first = (stack.clock.now().date() + timedelta(days=14)).isoformat()
    browser, signed = await stack.browser(PEOPLE[Role.collector])
    async with browser:
        page = await browser.get("/customers/C-1", headers={"accept-language": "de"})
        assert "Ratenplan vereinbaren" in page.text and unlabelled(page.text) == []
        assert "<td>geplant</td>" in page.text and "<td>gesendet</td>" in page.text  # the timeline's kinds in German
        form = {"csrf_token": signed.csrf_token, "invoice_ids": ["I-2"], "instalment_count": "3",
                "first_due_date": first, "interval": "monthly", "total": "1.250,50", "idempotency_key": "k-plan-1"}  # fmt: skip
        none_chosen = await browser.post(
            "/customers/C-1/plan", data=form | {"invoice_ids": []}, headers={"accept-language": "de"}
        )
        too_much = await browser.post("/customers/C-1/plan", data=form, headers={"accept-language": "de"})
        created = await browser.post(
            "/customers/C-1/plan", data=form | {"total": "250,50"}, headers={"accept-language": "de"}
        )
    assert none_chosen.status_code == 422 and "Wählen Sie eine oder mehrere offene Rechnungen" in none_chosen.text
    assert 'value="1.250,50"' in none_chosen.text  # the input as typed
    # What promise-tracker refuses (more than the open balance) shows in the plan form, the input kept.
    plan_form = too_much.text.split('id="plan"')[1].split("</form>")[0]
    assert too_much.status_code == 422 and 'value="1.250,50"' in plan_form and 'class="error"' in plan_form
    assert created.status_code == 303, created.text
    (plan,) = await api_items(stack, "promise-tracker", "/v1/plans", customer_id="C-1")
    assert plan["total"] == "250.50" and plan["instalment_count"] == 3 and plan["invoice_ids"] == ["I-2"]


async def test_a_collector_pauses_and_opens_and_resolves_a_dispute(stack: PagesPlatform) -> None:
    browser, signed = await stack.browser(PEOPLE[Role.collector])
    async with browser:
        no_token = await browser.post("/customers/C-2/pause", data={"reason": "no token"})
        paused = await browser.post(
            "/customers/C-2/pause", data={"csrf_token": signed.csrf_token, "reason": "customer in hospital"}
        )
        foreign = await browser.post(
            "/customers/C-2/dispute", data={"csrf_token": signed.csrf_token, "invoice_id": "I-1"}
        )
        opened = await browser.post("/customers/C-2/dispute", data={"csrf_token": signed.csrf_token, "invoice_id": "I-3",
                                                                    "reason": "goods damaged"})  # fmt: skip
        await stack.quiet()
        page = await browser.get("/customers/C-2")
        worklist = await browser.get("/worklist", params={"kind": "dispute"})
        resolved = await browser.post("/customers/C-2/resolve", data={"csrf_token": signed.csrf_token, "invoice_id": "I-3",
                                                                      "reason": "credit agreed"})  # fmt: skip
    assert no_token.status_code == 403
    assert paused.status_code == 303
    timeline = await api_items(stack, "policy-engine", "/v1/customers/C-2/timeline")
    assert any("customer in hospital" in (e.get("reason") or "") for e in timeline)
    assert all("no token" not in (e.get("reason") or "") for e in timeline)
    assert foreign.status_code == 422 and 'id="f-dispute-invoice_id-error"' in foreign.text  # not C-2's invoice
    assert opened.status_code == 303
    assert 'action="/customers/C-2/resolve"' in page.text and "goods damaged" in page.text
    assert 'href="/customers/C-2"' in worklist.text and "I-3" in worklist.text  # the open dispute needs a person
    assert resolved.status_code == 303
    async with stack.api("ledger-sync") as api:
        invoice = (await api.get("/v1/invoices/I-3")).json()
    assert invoice["disputed"] is False


async def test_the_worklist_ranks_the_tasks_by_amount_at_risk_and_a_collector_completes_one(
    stack: PagesPlatform,
) -> None:
    tasks = await api_items(stack, "notifier", "/v1/tasks")
    browser, signed = await stack.browser(PEOPLE[Role.collector])
    async with browser:
        page = await browser.get("/worklist", params={"kind": "task"})
        assert page.status_code == 200, page.text
        listed = [
            line.split('data-key="')[1].split('"')[0]
            for line in page.text.split("<li ")[1:]
            if 'data-kind="task"' in line
        ]
        by_total = sorted(tasks, key=lambda t: -float(t["details"]["total"]))
        assert listed == [t["id"] for t in by_total]  # USD 5,000 before EUR 1,500 (same age)
        assert '/customers/C-2"' in page.text and "5,000.00\xa0USD" in page.text
        too_long = await browser.post(f"/worklist/tasks/{listed[0]}/complete",
                                      data={"csrf_token": signed.csrf_token, "note": "x" * 4001})  # fmt: skip
        done = await browser.post(f"/worklist/tasks/{listed[0]}/complete",
                                  data={"csrf_token": signed.csrf_token, "note": "reached, will pay Friday"})  # fmt: skip
        after = await browser.get("/worklist", params={"kind": "task"})
    assert too_long.status_code == 422 and "x" * 4001 in too_long.text and "error" in too_long.text
    assert done.status_code == 303
    open_now = [t["id"] for t in await api_items(stack, "notifier", "/v1/tasks")]
    assert listed[0] not in open_now and listed[0] not in after.text and listed[1] in after.text


async def test_a_broken_promise_comes_onto_the_worklist_with_its_shortfall(stack: PagesPlatform) -> None:
    today = stack.clock.now().date()
    async with stack.api("promise-tracker") as api:
        r = await api.post("/v1/promises", json={"customer_id": "C-2", "invoice_ids": ["I-3"], "currency": "USD",
                                                 "amount": "700.00", "promised_date": today.isoformat(),
                                                 "recorded_by": "collector"})  # fmt: skip
        assert r.status_code == 201, r.text
    await stack.quiet()
    stack.clock.advance(timedelta(days=2))

    async def broken() -> list[dict[str, Any]]:
        return await api_items(stack, "promise-tracker", "/v1/promises", status="broken")

    (promise,) = await poll_until(broken, timeout=30, what="the promise to break")
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/worklist", params={"kind": "broken_promise"})
        german = await browser.get("/worklist", headers={"accept-language": "de"})
    assert f'data-key="{promise["id"]}"' in page.text and "700.00\xa0USD" in page.text
    assert '<form method="post" action="/worklist' not in page.text  # a viewer completes nothing
    assert "Gebrochene Zusage" in german.text and "700,00\xa0USD" in german.text


async def test_the_dashboards_promise_and_contact_panels_are_insights_figures(stack: PagesPlatform) -> None:
    today = stack.clock.now().date()
    await stack.quiet()
    figures: dict[str, list[dict[str, Any]]] = {}

    async def applied() -> bool:
        """insights has the promises and the contacts (it reads them from the stream, a moment after the rest)."""
        async with stack.api("insights") as api:
            figures["promises"] = (await api.get("/v1/figures/promises", params={"to": today.isoformat()})).json()[
                "rows"
            ]
            figures["contacts"] = (await api.get("/v1/figures/contacts", params={"from": today.replace(day=1).isoformat(),
                                                 "to": today.isoformat(), "group_by": "channel"})).json()["rows"]  # fmt: skip
        return bool(figures["promises"] and figures["contacts"])

    await poll_until(applied, timeout=60, what="insights to have the promises and the contacts")
    promises, contacts = figures["promises"], figures["contacts"]
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/", headers={"accept-language": "de"})
    assert page.status_code == 200
    shown = tables(page.text, id="promises")[0].body
    assert shown == [[r["currency"], formats.share(r["kept_rate"], "de"), str(r["made"]), str(r["kept"]), str(r["broken"])]
                     for r in promises]  # fmt: skip
    assert any(r[2] == "1" for r in shown)  # the broken promise of the test before
    # insights answers a row per day and channel; the page one per channel with the month's sums
    assert tables(page.text, id="contacts")[0].body == [
        [channel, str(sum(r["sent"] for r in contacts if r["channel"] == channel)),
         str(sum(r["held"] for r in contacts if r["channel"] == channel))]
        for channel in dict.fromkeys(r["channel"] for r in contacts)
    ]  # fmt: skip


async def test_an_erp_record_in_quarantine_is_on_the_worklist_after_the_amounts(stack: PagesPlatform) -> None:
    fake = FakeQuickBooks("9130350000000001", stack.clock.now)
    async with serving(fake.app) as base, stack.api("ledger-sync") as admin:
        config = {"base_url": base, "token_url": f"{base}/oauth2/v1/tokens/bearer", "client_id": fake.client_id}
        credentials = {"client_secret": fake.client_secret, "refresh_token": fake.refresh_token}
        r = await admin.put("/v1/connectors/quickbooks",
                            json={"external_account": fake.realm, "config": config, "credentials": credentials})  # fmt: skip
        assert r.status_code == 200, r.text
        fake.customer("71", "Initech", "ap@initech.example")
        fake.invoice("72", "71", "10.00")["TotalAmt"] = "ten dollars"
        assert (await admin.post("/v1/connectors/quickbooks/sync")).status_code == 200
        (record,) = (await admin.get("/v1/connectors/quickbooks/quarantine")).json()["items"]
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/worklist")
    kinds = [line.split('data-kind="')[1].split('"')[0] for line in page.text.split("<li ")[1:] if "data-kind" in line]
    assert kinds[-1] == "quarantined" and "quarantined" not in kinds[:-1]  # no amount of its own: after the others
    assert f"quickbooks {record['entity']} 72: {escape(record['error'])}" in page.text


async def test_a_message_that_failed_is_on_the_worklist_with_its_reason(stack: PagesPlatform) -> None:
    (failed,) = await api_items(stack, "notifier", "/v1/deliveries", status="failed")
    assert failed["customer_id"] == "C-3"
    browser, _ = await stack.browser(PEOPLE[Role.viewer])
    async with browser:
        page = await browser.get("/worklist", params={"kind": "bounced"})
    item = page.text.split(f'data-key="{failed["id"]}"')[1].split("</li>")[0]
    assert '/customers/C-3"' in item and f"email to –: failed: {escape(failed['error'])}" in item


async def test_a_collector_logs_a_conversation_with_a_promise_and_both_land(stack: PagesPlatform) -> None:
    """The call goes to the policy engine (its timeline names the person: the actor header), the promise to
    promise-tracker; a promise the tracker refuses comes back at its field with the call logged once, and sending
    the corrected form again records the promise without logging the call twice."""
    browser, signed = await stack.browser(PEOPLE[Role.collector])
    promised = (stack.clock.now().date() + timedelta(days=10)).isoformat()
    form = {"csrf_token": signed.csrf_token, "outcome": "conversation", "invoice_ids": ["I-4"],
            "note": "will pay on the 12th", "idempotency_key": "call-test-1"}  # fmt: skip
    async with browser:
        wrong = await browser.post("/customers/C-3/call", data={**form, "outcome": "shouted"})
        refused = await browser.post(
            "/customers/C-3/call", data={**form, "promise_amount": "80,00", "promised_date": "2020-01-01"},
            headers={"accept-language": "de"},
        )  # fmt: skip
        again = await browser.post(
            "/customers/C-3/call", data={**form, "promise_amount": "80,00", "promised_date": promised},
            headers={"accept-language": "de"}, follow_redirects=False,
        )  # fmt: skip
    assert wrong.status_code == 422 and "choose what came of the call" in wrong.text
    assert refused.status_code == 422 and "Der Anruf ist erfasst" in refused.text
    assert 'value="80,00"' in refused.text  # the input kept
    assert again.status_code == 303 and again.headers["location"].endswith("?done=call#call")
    await stack.quiet()
    calls = [e for e in await api_items(stack, "policy-engine", "/v1/customers/C-3/timeline") if e["kind"] == "call"]
    assert len({e["detail"].get("call_id") for e in calls}) == 1  # logged once, on each debt's timeline
    assert all("Colin Collector" in str(e["detail"]) for e in calls)
    promises = await api_items(stack, "promise-tracker", "/v1/promises", customer_id="C-3")
    assert [(p["amount"], p["promised_date"]) for p in promises if p["promised_date"] == promised] == [
        ("80.00", promised)
    ]


async def test_a_collector_takes_a_task_then_puts_it_aside_until_a_day(stack: PagesPlatform) -> None:
    open_tasks = await api_items(stack, "notifier", "/v1/tasks", status="open")
    assert open_tasks, "the seed makes a task per case"
    task_id = open_tasks[0]["id"]
    browser, signed = await stack.browser(PEOPLE[Role.collector])
    later = (stack.clock.now().date() + timedelta(days=3)).isoformat()
    async with browser:
        taken = await browser.post(f"/worklist/tasks/{task_id}/assign", data={"csrf_token": signed.csrf_token})
        shown = await browser.get("/worklist", params={"kind": "task"})
        past = await browser.post(f"/worklist/tasks/{task_id}/snooze",
                                  data={"csrf_token": signed.csrf_token, "snooze_until": "2020-01-01"})  # fmt: skip
        aside = await browser.post(f"/worklist/tasks/{task_id}/snooze",
                                   data={"csrf_token": signed.csrf_token, "snooze_until": later})  # fmt: skip
        after = await browser.get("/worklist", params={"kind": "task"})
    assert taken.status_code == 303, re.findall(r'class="error[^"]*"[^>]*>[^<]*', taken.text)
    assert "assigned to Colin Collector" in shown.text
    assert past.status_code == 422 and 'value="2020-01-01"' in past.text  # the notifier's refusal, input kept
    assert aside.status_code == 303
    assert f'data-key="{task_id}"' not in after.text  # off the open list until that day
    held = [t for t in await api_items(stack, "notifier", "/v1/tasks", include_snoozed="true") if t["id"] == task_id]
    assert held and held[0]["assignee_name"] == "Colin Collector" and held[0]["snoozed_until"].startswith(later)


async def test_a_collector_pauses_until_a_day_and_a_past_day_comes_back_at_its_field(stack: PagesPlatform) -> None:
    later = (stack.clock.now().date() + timedelta(days=5)).isoformat()
    browser, signed = await stack.browser(PEOPLE[Role.collector])
    async with browser:
        past = await browser.post("/customers/C-1/pause", data={"csrf_token": signed.csrf_token,
                                                                "reason": "on holiday", "until": "2020-01-01"})  # fmt: skip
        german = await browser.post("/customers/C-1/pause", headers={"accept-language": "de"},
                                    data={"csrf_token": signed.csrf_token, "until": "morgen"})  # fmt: skip
        paused = await browser.post("/customers/C-1/pause", data={"csrf_token": signed.csrf_token,
                                                                  "reason": "on holiday", "until": later})  # fmt: skip
        page = await browser.get(paused.headers.get("location", "/"))
    pause_form = past.text.split('id="pause"')[1].split("</form>")[0]
    assert past.status_code == 422 and 'id="f-pause-until-error"' in pause_form
    assert "Choose a day after today." in pause_form
    assert 'value="2020-01-01"' in pause_form and 'value="on holiday"' in pause_form
    assert german.status_code == 422 and "Wählen Sie einen Tag nach heute." in german.text
    assert paused.status_code == 303 and "done=pause" in paused.headers["location"]
    async with stack.api("policy-engine") as api:
        block = (await api.get("/v1/customers/C-1/dunning-block")).json()
    assert block["blocked"] is True and block["until"] is not None
    shown = page.text.split('id="paused"')[1].split("</dd>")[0]
    assert f">paused until {formats.instant(block['until'], 'en')}: on holiday" in shown


async def test_a_collector_adds_a_note_that_the_timeline_shows_with_their_name(stack: PagesPlatform) -> None:
    collector, signed = await stack.browser(PEOPLE[Role.collector])
    viewer, viewer_signed = await stack.browser(PEOPLE[Role.viewer])
    async with collector, viewer:
        empty = await collector.post("/customers/C-2/note", data={"csrf_token": signed.csrf_token, "text": "  ",
                                                                  "invoice_ids": ["I-3"], "idempotency_key": "n-1"})  # fmt: skip
        added = await collector.post("/customers/C-2/note", data={"csrf_token": signed.csrf_token,
                                                                  "text": "CFO back on Monday", "idempotency_key": "n-2"})  # fmt: skip
        page = await collector.get(added.headers.get("location", "/"))
        german = await collector.get("/customers/C-2", headers={"accept-language": "de"})
        seen = await viewer.get("/customers/C-2")
        refused = await viewer.post("/customers/C-2/note", data={"csrf_token": viewer_signed.csrf_token,
                                                                 "text": "a viewer's note"})  # fmt: skip
    note_form = empty.text.split('id="note"')[1].split("</form>")[0]
    assert empty.status_code == 422 and 'id="f-note-text-error"' in note_form and "Write the note." in note_form
    assert 'value="I-3" checked' in note_form
    assert added.status_code == 303 and "done=note" in added.headers["location"]
    assert "The note is on the timeline." in page.text
    row = next(r for r in tables(page.text, id="timeline")[0].body if r[1] == "note")
    assert (row[4], row[5]) == ("CFO back on Monday", "Colin Collector")
    assert "<td>Notiz</td>" in german.text and unlabelled(german.text) == []
    assert 'action="/customers/C-2/note"' not in seen.text
    assert refused.status_code == 403
    notes = [e for e in await api_items(stack, "policy-engine", "/v1/customers/C-2/timeline") if e["kind"] == "note"]
    assert [e["detail"]["note"] for e in notes] == ["CFO back on Monday"]


async def test_a_hand_off_is_on_the_worklist_until_a_collector_completes_it_with_an_outcome(
    stack: PagesPlatform,
) -> None:
    today = stack.clock.now().date()
    async with stack.api("policy-engine") as admin:
        base = (await admin.get("/v1/policies/default")).json()
        agency = {"name": "agency", "offset_days": 0, "channels": ["task"], "template_id": "escalation_call",
                  "tone": "final", "actions": ["hand_off_to_collections"]}  # fmt: skip
        doc = {k: v for k, v in base.items() if k != "version"} | {
            "id": "agency", "name": "Agency", "steps": [agency], "priority": 5001, "hand_off_requires_reminder": False,
        }  # fmt: skip
        assert (await admin.put("/v1/policies/agency", json=doc)).status_code in (200, 201)
        assert (await admin.put("/v1/assignments/customers/C-4", json={"policy_id": "agency"})).status_code == 200
    async with stack.api("ledger-sync") as api:
        assert (await api.post("/v1/customers", json={"id": "C-4", "name": "Slow Pay AG"})).status_code == 201
        body = {"id": "I-5", "customer_id": "C-4", "number": "RE-I-5", "currency": "EUR", "total": "900.00",
                "issue_date": (today - timedelta(days=30)).isoformat(), "due_date": today.isoformat()}  # fmt: skip
        assert (await api.post("/v1/invoices", json=body)).status_code == 201
    await stack.quiet()

    async def handed_off() -> list[dict[str, Any]]:
        async with stack.api("policy-engine") as api:
            state = (await api.get("/v1/invoices/I-5/dunning")).json()
        if state.get("next_at"):  # move the clock to the hand-off step's moment
            stack.clock.set(max(stack.clock.now(), datetime.fromisoformat(state["next_at"])))
        return await api_items(stack, "policy-engine", "/v1/hand-offs")

    (hand_off,) = await poll_until(handed_off, timeout=30, what="I-5 handed off to collections")
    collector, signed = await stack.browser(PEOPLE[Role.collector])
    viewer, _ = await stack.browser(PEOPLE[Role.viewer])
    async with collector, viewer:
        page = await collector.get("/worklist", params={"kind": "hand_off"})
        seen = await viewer.get("/worklist", params={"kind": "hand_off"})
        wrong = await collector.post("/worklist/hand-offs/I-5/complete", data={"csrf_token": signed.csrf_token,
                                                                               "outcome": "lost", "note": "file 9"})  # fmt: skip
        done = await collector.post("/worklist/hand-offs/I-5/complete", data={
            "csrf_token": signed.csrf_token, "outcome": "sent_to_agency", "note": "agency file 9"})  # fmt: skip
        twice = await collector.post("/worklist/hand-offs/I-5/complete", data={
            "csrf_token": signed.csrf_token, "outcome": "kept_in_house"})  # fmt: skip
        after = await collector.get("/worklist", params={"kind": "hand_off"})
    item = page.text.split('data-key="I-5"')[1].split("</li>")[0]
    assert "900.00\xa0EUR" in item and '/customers/C-4"' in item and 'action="/worklist/hand-offs/I-5/complete"' in item
    assert "handed off by step agency" in item and hand_off["balance"] == "900.00"
    assert 'data-key="I-5"' in seen.text and "/worklist/hand-offs/" not in seen.text  # a viewer completes nothing
    assert wrong.status_code == 422 and "agency file 9" not in wrong.text and "file 9" in wrong.text
    assert done.status_code == 303 and done.headers["location"] == "/worklist?done=hand_off"
    assert twice.status_code == 422 and "already completed" in twice.text
    assert 'data-key="I-5"' not in after.text
    entry = (await api_items(stack, "policy-engine", "/v1/invoices/I-5/timeline", limit=500))[-1]
    assert entry["kind"] == "hand_off" and entry["detail"]["actor"]["name"] == "Colin Collector"
