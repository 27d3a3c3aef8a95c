"""The self-service page over plain HTTP (no browser): signed links, what the page shows, what it records,
and refusals that write nothing. The real-browser test lives in tests/browser/."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from dunning_kit.clock import SimulatedClock
from dunning_kit.signed_links import sign
from dunning_kit.testing import RunningService

pytestmark = pytest.mark.asyncio


def link_token(tracker: RunningService, clock: SimulatedClock, **over: Any) -> str:
    claims = {"tenant_id": "acme", "customer_id": "C-W", "invoice_ids": ["INV-W1", "INV-W2"], **over}
    expires = over.pop("expires_at", None) or clock.now() + timedelta(days=14)
    claims.pop("expires_at", None)
    return sign(tracker.runtime.settings.self_service_signing_key, claims, expires)


async def seed(ledger: Any, quiet: Any) -> None:
    await ledger.customer("C-W", "Europe/London", name="Wernham <script>alert(1)</script> Hogg")
    await ledger.invoice("INV-W1", "C-W", "1200.00", currency="GBP")
    await ledger.invoice("INV-W2", "C-W", "300.50", currency="GBP")
    await ledger.customer("C-X")
    await ledger.invoice("INV-X", "C-X", "10.00", currency="GBP")
    await quiet()


async def nothing_written(tracker: RunningService) -> None:
    async with tracker.client() as api:
        assert (await api.get("/v1/promises")).json()["items"] == []
        assert (await api.get("/v1/plans")).json()["items"] == []


async def test_the_page_shows_the_customers_open_invoices_safely(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await seed(ledger, quiet)
    async with tracker.client(None) as web:
        r = await web.get("/self-service/promise", params={"token": link_token(tracker, clock)})
    assert r.status_code == 200
    html = r.text
    assert "Invoice W1" in html and "GBP 1,200.00" in html and "GBP 300.50" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html, "autoescaped"
    assert 'max="2026-04-01"' in html and 'min="2026-03-02"' in html
    assert "no-store" in r.headers["cache-control"] and r.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert '<html lang="en">' in html and "<h1>" in html
    for control in ("promised_date", "instalment_count", "first_due_date"):
        assert re.search(rf'<label for="{control}">', html), control


async def test_a_customer_promise_is_recorded_from_the_form(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await seed(ledger, quiet)
    token = link_token(tracker, clock)
    async with tracker.client(None) as web:
        r = await web.post(
            "/self-service/promise",
            data={"token": token, "invoice_ids": ["INV-W1", "INV-W2"], "promised_date": "2026-03-20",
                  "choice": "promise"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert "GBP 1,500.50 by 20 March 2026" in r.text
        # A second submission finds the invoices taken and says so.
        again = await web.get("/self-service/promise", params={"token": token})
        assert "already" in again.text
    [event] = await promise_events.wait_for("promise.created")
    assert event.data.recorded_by == "customer"
    assert str(event.data.amount) == "1500.50" and event.data.currency == "GBP"
    assert event.data.invoice_ids == ["INV-W1", "INV-W2"]


async def test_a_customer_can_request_a_payment_plan(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await seed(ledger, quiet)
    async with tracker.client(None) as web:
        r = await web.post(
            "/self-service/promise",
            data={"token": link_token(tracker, clock), "invoice_ids": ["INV-W1"], "instalment_count": "4",
                  "first_due_date": "2026-03-31", "choice": "plan"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert "4 instalments" in r.text and "30 April 2026" in r.text
    [plan] = await promise_events.wait_for("plan.created")
    assert [str(i.amount) for i in plan.data.instalments] == ["300.00"] * 4
    async with tracker.client() as api:
        assert (await api.get(f"/v1/plans/{plan.data.plan_id}")).json()["recorded_by"] == "customer"


async def test_invalid_choices_come_back_with_an_error_summary_and_nothing_is_written(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await seed(ledger, quiet)
    token = link_token(tracker, clock)
    async with tracker.client(None) as web:
        for data, target in [
            ({"invoice_ids": ["INV-W1"], "promised_date": "2026-04-02", "choice": "promise"}, "promised_date"),
            ({"invoice_ids": ["INV-W1"], "promised_date": "2026-03-01", "choice": "promise"}, "promised_date"),
            ({"invoice_ids": ["INV-W1"], "promised_date": "", "choice": "promise"}, "promised_date"),
            ({"promised_date": "2026-03-20", "choice": "promise"}, "invoices"),
            ({"invoice_ids": ["INV-W1"], "first_due_date": "2026-03-20", "instalment_count": "99", "choice": "plan"},
             "instalment_count"),
        ]:  # fmt: skip
            r = await web.post("/self-service/promise", data={"token": token, **data})
            assert r.status_code == 422, (data, r.text)
            assert 'role="alert"' in r.text and f'href="#{target}"' in r.text, (data, target)
    await nothing_written(tracker)


async def test_expired_tampered_and_other_customer_links_are_refused_and_write_nothing(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await seed(ledger, quiet)
    good = link_token(tracker, clock)
    expired = link_token(tracker, clock, expires_at=clock.now() - timedelta(seconds=1))
    _, mac = good.split(".")
    tampered = link_token(tracker, clock, invoice_ids=["INV-W1", "INV-W2", "INV-X"]).split(".")[0] + "." + mac
    other_customer = link_token(tracker, clock, invoice_ids=["INV-X"])  # names C-W, but INV-X is C-X's
    wrong_key = sign("not-our-key", {"tenant_id": "acme", "customer_id": "C-W", "invoice_ids": ["INV-W1"]},
                     clock.now() + timedelta(days=1))  # fmt: skip
    form = {"invoice_ids": ["INV-W1"], "promised_date": "2026-03-20", "choice": "promise"}
    async with tracker.client(None) as web:
        for token, code, words in [
            (expired, 410, "expired"),
            (tampered, 403, "cannot be used"),
            (other_customer, 403, "does not match your account"),
            (wrong_key, 403, "cannot be used"),
            ("", 403, "cannot be used"),
            ("garbage", 403, "cannot be used"),
        ]:
            shown = await web.get("/self-service/promise", params={"token": token})
            assert shown.status_code == code and words in shown.text, (token, shown.text)
            posted = await web.post("/self-service/promise", data={"token": token, **form})
            assert posted.status_code == code and "Nothing has been recorded" in posted.text
        # A genuine link cannot be used for an invoice it does not name.
        smuggled = await web.post("/self-service/promise", data={"token": good, **form, "invoice_ids": ["INV-X"]})
        assert smuggled.status_code == 403
    await nothing_written(tracker)
