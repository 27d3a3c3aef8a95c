"""A German customer's reminder across the platform: ledger-sync API -> policy engine -> notifier (shipped
German template, Babel formatting) -> a real SMTP socket; the promise link in it opens the
promise-tracker's self-service page (the signed token format both services share)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.testing import Platform, poll_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def platform_overrides(smtp_sink: SmtpSink) -> dict[str, dict[str, object]]:
    return {"notifier": {"smtp_host": smtp_sink.host, "smtp_port": smtp_sink.port, "dev_mode": True}}


async def test_a_german_reminder_with_a_working_promise_link(platform: Platform, smtp_sink: SmtpSink) -> None:
    today = platform.clock.now().date()
    async with platform["ledger-sync"].client() as api:
        customer = {"id": "C-200", "name": "Müller Maschinenbau GmbH", "email": "buchhaltung@mueller.example",
                    "time_zone": "Europe/Berlin", "locale": "de-DE", "country": "DE"}  # fmt: skip
        assert (await api.post("/v1/customers", json=customer)).status_code == 201
        invoice = {"id": "INV-DE-1", "customer_id": "C-200", "number": "RE-2026-0042", "currency": "EUR",
                   "total": "4820.00", "issue_date": today.isoformat(), "due_date": (today + timedelta(days=10)).isoformat()}  # fmt: skip
        assert (await api.post("/v1/invoices", json=invoice)).status_code == 201
    await platform.wait_until_quiet()
    await platform.advance(days=11)

    async def first_mail():  # type: ignore[no-untyped-def]
        return smtp_sink.received[0] if smtp_sink.received else None

    mail = await poll_until(first_mail, what="the reminder email")
    assert mail.rcpt_tos == ["buchhaltung@mueller.example"]
    text = mail.message.get_body(("plain",)).get_content()
    assert "RE-2026-0042" in text and "4.820,00\xa0€" in text and "Müller Maschinenbau GmbH" not in mail.subject
    assert mail.message.get_body(("html",)) is not None

    promise_line = next(line for line in text.splitlines() if "/self-service/promise?token=" in line)
    token = parse_qs(urlparse(promise_line.split(": ", 1)[1]).query)["token"][0]
    async with httpx.AsyncClient(base_url=platform["promise-tracker"].base_url) as browser:
        page = await browser.get("/self-service/promise", params={"token": token})
    assert page.status_code == 200, page.text[:500]
    assert "RE-2026-0042" in page.text

    async with httpx.AsyncClient(base_url=platform["notifier"].base_url) as dev:
        outbox = await dev.get("/dev/outbox")
    assert outbox.status_code == 200 and "buchhaltung@mueller.example" in outbox.text
