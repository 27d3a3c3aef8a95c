"""NetSuite connector against a fake that checks OAuth 1.0a TBA (HMAC-SHA256) and speaks SuiteQL/record JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest_asyncio

from dunning_kit.clock import SimulatedClock
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, start_service
from ledger_sync.devfakes.netsuite import FakeNetSuite
from ledger_sync.devfakes.server import serving
from ledger_sync.testing import LedgerHarness

ACCOUNT = "1234567_SB1"
ADMIN = "acme-admin-key"


@pytest_asyncio.fixture
async def fns(clock: SimulatedClock) -> AsyncIterator[tuple[FakeNetSuite, str]]:
    fake = FakeNetSuite(ACCOUNT, clock.now)
    async with serving(fake.app) as base:
        yield fake, base


async def configure(h: LedgerHarness, fake: FakeNetSuite, base: str, token_secret: str | None = None) -> None:
    async with h.client(ADMIN) as api:
        put = await api.put("/v1/connectors/netsuite", json={
            "external_account": ACCOUNT, "config": {"base_url": base, "page_size": 2},
            "sync_interval_s": 30 * 86400, "reconcile_interval_s": 30 * 86400,  # the test runs syncs itself
            "credentials": {"consumer_key": fake.consumer_key, "consumer_secret": fake.consumer_secret,
                            "token_id": fake.token_id, "token_secret": token_secret or fake.token_secret},
        })  # fmt: skip
        assert put.status_code == 200, put.text


@pytest_asyncio.fixture
async def h(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock, fns: tuple[FakeNetSuite, str]
) -> AsyncIterator[LedgerHarness]:
    svc = await start_service(
        spec("ledger-sync"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock
    )
    harness = LedgerHarness(svc, broker.bootstrap_servers)
    await configure(harness, *fns)
    try:
        yield harness
    finally:
        await svc.stop()


async def sync(h: LedgerHarness) -> dict[str, Any]:
    async with h.client(ADMIN) as api:
        r = await api.post("/v1/connectors/netsuite/sync")
    return {"status": r.status_code, **r.json()}


async def test_suiteql_and_payment_records_fill_the_ledger_then_poll_by_last_modified_date(
    h: LedgerHarness, fns: tuple[FakeNetSuite, str], clock: SimulatedClock
) -> None:
    fake, _ = fns
    fake.customer("7", "Initech Inc.", "ap@initech.example")
    fake.invoice("101", "7", "120.00")
    fake.invoice("102", "7", "30.50")
    fake.invoice("103", "7", "9.99", currency="4")
    fake.payment("900", "7", Decimal("150.5"), {"101": Decimal("120.0"), "102": Decimal("30.5")})
    out = await sync(h)
    assert out["succeeded"], out
    assert (await h.get("/v1/invoices/101")).json()["status"] == "paid"
    assert (await h.get("/v1/invoices/103")).json()["currency"] == "EUR"
    assert (await h.get("/v1/payments/900")).json()["unapplied"] == "0.00"
    assert not any("TO_DATE" in q for q in fake.queries), "the first run is a backfill"
    clock.advance(days=1)
    fake.invoice("103", "7", "9.99", currency="4", status="Invoice : Voided")
    out = await sync(h)
    assert out["succeeded"], out
    assert any("TO_DATE('2026-03-02'" in q for q in fake.queries), "later runs filter on lastmodifieddate"
    assert (await h.get("/v1/invoices/103")).json()["status"] == "void"
    assert (await h.event_types()).count("invoice.created") == 3
    assert fake.rejected == 0, "every call carried a valid HMAC-SHA256 TBA signature"


async def test_a_wrong_token_secret_is_refused_by_the_signature_check(
    h: LedgerHarness, fns: tuple[FakeNetSuite, str]
) -> None:
    fake, base = fns
    fake.customer("7", "Initech Inc.")
    await configure(h, fake, base, token_secret="stolen-but-wrong")
    out = await sync(h)
    assert out["status"] == 502 and "401" in out["error"]
    assert fake.rejected >= 1
    assert (await h.get("/v1/customers/7")).status_code == 404
