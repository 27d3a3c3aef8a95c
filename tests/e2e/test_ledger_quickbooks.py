"""ERP to reminder: an invoice synced from QuickBooks Online is scheduled for dunning, and a void that
arrives by signed webhook cancels it before anything is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio

from dunning_kit.clock import SimulatedClock
from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.testing import Platform, poll_until
from ledger_sync.devfakes.quickbooks import FakeQuickBooks
from ledger_sync.devfakes.server import serving

pytestmark = pytest.mark.e2e

REALM = "9130350000000042"
VERIFIER = "e2e-verifier"


@pytest.fixture
def platform_overrides(smtp_sink: SmtpSink) -> dict[str, dict[str, object]]:
    return {
        "notifier": {"smtp_host": smtp_sink.host, "smtp_port": smtp_sink.port},
        "ledger-sync": {"quickbooks_webhook_verifier_token": VERIFIER},
    }


@pytest_asyncio.fixture
async def qbo(clock: SimulatedClock) -> AsyncIterator[tuple[FakeQuickBooks, str]]:
    fake = FakeQuickBooks(REALM, clock.now)
    async with serving(fake.app) as base:
        yield fake, base


async def timeline(platform: Platform, invoice_id: str) -> list[str]:
    async with platform["policy-engine"].client() as api:
        r = await api.get(f"/v1/invoices/{invoice_id}/timeline", params={"limit": 500})
    return [e["kind"] for e in r.json().get("items", [])] if r.status_code == 200 else []


async def test_a_void_by_quickbooks_webhook_cancels_the_scheduled_reminder(
    platform: Platform, qbo: tuple[FakeQuickBooks, str], smtp_sink: SmtpSink
) -> None:
    fake, base = qbo
    today = platform.clock.now().date()
    fake.customer("1", "Initech GmbH", "ap@initech.example")
    fake.invoice("130", "1", "4820.00", currency="EUR", txn_date=today.isoformat(),
                 due_date=(today + timedelta(days=10)).isoformat())  # fmt: skip
    async with platform["ledger-sync"].client("acme-admin-key") as admin:
        put = await admin.put("/v1/connectors/quickbooks", json={
            "external_account": REALM,
            "config": {"base_url": base, "token_url": f"{base}/oauth2/v1/tokens/bearer", "client_id": fake.client_id,
                       "home_currency": "EUR"},
            "credentials": {"client_secret": fake.client_secret, "refresh_token": fake.refresh_token},
            "sync_interval_s": 30 * 86400, "reconcile_interval_s": 30 * 86400,
        })  # fmt: skip
        assert put.status_code == 200, put.text
        synced = await admin.post("/v1/connectors/quickbooks/sync")
        assert synced.status_code == 200 and synced.json()["succeeded"], synced.text
    await platform.wait_until_quiet()
    assert await poll_until(lambda: timeline(platform, "130"), what="the invoice's dunning timeline") == ["scheduled"]

    fake.void_invoice("130")
    body = fake.cloudevents_webhook([("Invoice", "130", "Voided")])
    async with platform["ledger-sync"].client(None) as anon:
        r = await anon.post(
            "/webhooks/quickbooks", content=body, headers={"intuit-signature": fake.sign(body, VERIFIER)}
        )
    assert r.status_code == 200
    await platform.wait_until_quiet()
    await platform.advance(days=30)

    assert smtp_sink.received == []
    assert await timeline(platform, "130") == ["scheduled", "cancelled"]
