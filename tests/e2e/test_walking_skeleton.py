"""Walking skeleton: ledger-sync API -> broker -> policy engine timer -> notifier -> a real SMTP socket."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.testing import Platform, poll_until

pytestmark = pytest.mark.e2e

CUSTOMER = {"id": "C-100", "name": "Initech GmbH", "email": "ap@initech.example", "time_zone": "Europe/Berlin"}


def invoice(platform: Platform, due_in_days: int = 10) -> dict[str, object]:
    today = platform.clock.now().date()
    return {
        "id": "INV-2026-0042",
        "customer_id": "C-100",
        "number": "2026-0042",
        "currency": "EUR",
        "total": "4820.00",
        "issue_date": today.isoformat(),
        "due_date": (today + timedelta(days=due_in_days)).isoformat(),
    }


async def post_customer_and_invoice(platform: Platform) -> None:
    async with platform["ledger-sync"].client() as api:
        assert (await api.post("/v1/customers", json=CUSTOMER)).status_code == 201
        assert (await api.post("/v1/invoices", json=invoice(platform))).status_code == 201


async def test_due_date_reminder_reaches_the_smtp_sink(platform: Platform, smtp_sink: SmtpSink) -> None:
    await post_customer_and_invoice(platform)
    await platform.wait_until_quiet()
    assert smtp_sink.received == [], "nothing is due yet"

    await platform.advance(days=11)

    mail = await poll_until(lambda: _first(smtp_sink), what="the reminder email")
    assert mail.rcpt_tos == ["ap@initech.example"]
    body = mail.text()
    assert "2026-0042" in body
    assert "4,820.00" in body or "4.820,00" in body
    async with platform["policy-engine"].client() as api:
        entries = (await api.get("/v1/invoices/INV-2026-0042/timeline", params={"limit": 500})).json()["items"]
    # The default policy: pre-due reminder (day -5) then the due-date notice. The clock jumps 11 days at once,
    # so both are overdue when the engine looks: the due-date notice supersedes the stale pre-due reminder
    # (skipped, with the reason), is sent, and the first follow-up is scheduled.
    assert [(e["kind"], e["step"]) for e in entries] == [
        ("scheduled", "pre_due_reminder"),
        ("skipped", "pre_due_reminder"),
        ("sent", "due_date_notice"),
        ("scheduled", "follow_up_1"),
    ], entries


async def test_payment_before_due_date_means_no_email_and_a_cancelled_reminder(
    platform: Platform, smtp_sink: SmtpSink
) -> None:
    await post_customer_and_invoice(platform)
    await platform.advance(days=3)
    async with platform["ledger-sync"].client() as api:
        paid = await api.post(
            "/v1/payments",
            json={
                "id": "PAY-1",
                "customer_id": "C-100",
                "currency": "EUR",
                "amount": "4820.00",
                "received_on": platform.clock.now().date().isoformat(),
                "allocations": [{"invoice_id": "INV-2026-0042", "amount": "4820.00"}],
            },
        )
        assert paid.status_code == 201, paid.text
    await platform.wait_until_quiet()
    await platform.advance(days=30)

    assert smtp_sink.received == []
    async with platform["policy-engine"].client() as api:
        entries = (await api.get("/v1/invoices/INV-2026-0042/timeline", params={"limit": 500})).json()["items"]
    kinds = [e["kind"] for e in entries]
    # Only the next step is ever scheduled (the pre-due reminder); paid before it: cancelled, nothing sent.
    assert kinds == ["scheduled", "cancelled"], entries
    assert "paid" in entries[-1]["reason"]


async def _first(sink: SmtpSink):  # type: ignore[no-untyped-def]
    return sink.received[0] if sink.received else None
