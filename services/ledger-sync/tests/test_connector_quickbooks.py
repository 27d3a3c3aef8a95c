"""QuickBooks Online connector against a fake that speaks Intuit's JSON over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_plus

import pytest
import pytest_asyncio
from sqlalchemy import select

from dunning_kit.clock import SimulatedClock
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, start_service, wait_until_quiet
from ledger_sync.adapters import orm
from ledger_sync.adapters.credentials import open_credentials
from ledger_sync.devfakes.quickbooks import FakeQuickBooks
from ledger_sync.devfakes.server import serving
from ledger_sync.testing import LedgerHarness

REALM = "9130350000000001"
VERIFIER = "qbo-verifier-token"
ADMIN = "acme-admin-key"


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest_asyncio.fixture
async def qbo(clock: SimulatedClock) -> AsyncIterator[tuple[FakeQuickBooks, str]]:
    fake = FakeQuickBooks(REALM, clock.now)
    async with serving(fake.app) as base:
        yield fake, base


@pytest_asyncio.fixture
async def h(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock, qbo: tuple[FakeQuickBooks, str]
) -> AsyncIterator[LedgerHarness]:
    svc = await start_service(
        spec("ledger-sync"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
        overrides={"quickbooks_webhook_verifier_token": VERIFIER},
    )  # fmt: skip
    svc.runtime.objects.sync.sleep = Sleeps()
    harness = LedgerHarness(svc, broker.bootstrap_servers)
    fake, base = qbo
    r = await harness.client(ADMIN).__aenter__()
    try:
        put = await r.put(
            "/v1/connectors/quickbooks",
            json={
                "external_account": REALM,
                "config": {"base_url": base, "token_url": f"{base}/oauth2/v1/tokens/bearer", "client_id": fake.client_id,
                           "page_size": 2, "default_time_zone": "America/New_York"},
                "credentials": {"client_secret": fake.client_secret, "refresh_token": fake.refresh_token},
            },
        )  # fmt: skip
        assert put.status_code == 200, put.text
    finally:
        await r.aclose()
    try:
        yield harness
    finally:
        await svc.stop()


def seed(fake: FakeQuickBooks) -> None:
    fake.customer("1", "Initech", "ap@initech.example")
    fake.customer("2", "Hooli")
    fake.invoice("10", "1", "150.00")
    fake.invoice("11", "1", "99.95")
    fake.invoice("12", "2", "20.00", currency="EUR")
    fake.payment("50", "1", "200.00", {"10": "150.00", "11": "40.00"})


async def sync(h: LedgerHarness) -> dict[str, Any]:
    async with h.client(ADMIN) as api:
        r = await api.post("/v1/connectors/quickbooks/sync")
    return {"status": r.status_code, **r.json()}


async def stored_credentials(h: LedgerHarness) -> dict[str, Any]:
    """What is stored, opened with the service's keys (the values themselves are encrypted at rest)."""
    async with h.service.runtime.sessions() as s:
        sealed = await s.scalar(
            select(orm.connections.c.credentials).where(orm.connections.c.connector == "quickbooks")
        )
    return open_credentials(h.service.runtime.objects.sync.keyring, "acme", "quickbooks", sealed)


async def test_backfill_maps_customers_invoices_and_payments_and_stores_the_rotated_refresh_token(
    h: LedgerHarness, qbo: tuple[FakeQuickBooks, str]
) -> None:
    fake, _ = qbo
    seed(fake)
    first_refresh_token = fake.refresh_token
    out = await sync(h)
    assert out["status"] == 200 and out["succeeded"], out
    inv10 = (await h.get("/v1/invoices/10")).json()
    assert (inv10["status"], inv10["balance"], inv10["source"], inv10["terms"]) == (
        "paid",
        "0.00",
        "quickbooks",
        "Net 30",
    )
    assert (await h.get("/v1/invoices/11")).json()["balance"] == "59.95"
    assert (await h.get("/v1/payments/50")).json()["unapplied"] == "10.00"
    assert (await h.get("/v1/customers/1")).json()["time_zone"] == "America/New_York"
    creds = await stored_credentials(h)
    assert creds["refresh_token"] == fake.refresh_token != first_refresh_token
    types = await h.event_types()
    assert types.count("invoice.created") == 3 and types.count("payment.applied") == 1
    assert types.count("ledger.synced") == 1
    # Backfill went page by page (page_size 2) and then switched to CDC.
    assert any("STARTPOSITION 3" in p for _, p in fake.requests)
    assert (await sync(h))["changed"] == 0, "a second run with nothing new changes nothing"
    assert (await h.event_types()).count("invoice.created") == 3


async def test_cdc_applies_updates_voids_deletes_and_new_payments(
    h: LedgerHarness, qbo: tuple[FakeQuickBooks, str], clock: SimulatedClock
) -> None:
    fake, _ = qbo
    seed(fake)
    await sync(h)
    clock.advance(minutes=5)
    fake.invoice("11", "1", "120.00", due_date="2026-04-15")  # total and due date changed
    fake.void_invoice("12")
    fake.invoice("13", "2", "5.00")
    fake.delete("Invoice", "13")
    fake.payment("51", "1", "80.00", {"11": "80.00"})
    out = await sync(h)
    assert out["succeeded"], out
    assert any(p.startswith(f"/v3/company/{REALM}/cdc") for _, p in fake.requests)
    inv11 = (await h.get("/v1/invoices/11")).json()
    assert (inv11["total"], inv11["balance"], inv11["due_date"]) == ("120.00", "0.00", "2026-04-15")
    assert (await h.get("/v1/invoices/12")).json()["status"] == "void"
    assert (await h.get("/v1/invoices/13")).status_code == 404, "created and deleted between syncs: never seen"
    events = await h.events()
    updated = [e for e in events if e.type == "invoice.updated"]
    assert {c.field for c in updated[0].data.changes} >= {"total", "due_date"}
    assert [e.data.invoice_id for e in events if e.type == "invoice.voided"] == ["12"]


async def test_cdc_over_the_1000_object_cap_narrows_the_window_and_misses_nothing(
    h: LedgerHarness, qbo: tuple[FakeQuickBooks, str], clock: SimulatedClock
) -> None:
    fake, _ = qbo
    fake.customer("1", "Initech")
    await sync(h)
    clock.advance(minutes=5)
    for n in range(1, 1501):
        fake.invoice(str(1000 + n), "1", "1.00")
    out = await sync(h)
    assert out["succeeded"], out
    listed = 0
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = (await h.get("/v1/invoices", params=params)).json()
        listed += len(page["items"])
        if not (cursor := page["next_cursor"]):
            break
    assert listed == 1500
    per_entity = [p for _, p in fake.requests if "/cdc?" in p and "entities=Invoice&" in p]
    assert len(per_entity) >= 2, "the capped window was walked entity by entity, more than once"
    assert (await h.event_types()).count("invoice.created") == 1500


async def test_429_and_5xx_are_retried_honouring_retry_after(h: LedgerHarness, qbo: tuple[FakeQuickBooks, str]) -> None:
    fake, _ = qbo
    seed(fake)
    fake.fail_next = [(429, {"Retry-After": "7"}), (503, {})]
    out = await sync(h)
    assert out["succeeded"], out
    sleeps = h.service.runtime.objects.sync.sleep
    assert sleeps[0] == 7.0 and len(sleeps) == 2
    assert (await h.get("/v1/invoices/10")).json()["status"] == "paid"


async def test_an_interrupted_backfill_resumes_from_its_cursor_without_gaps_or_duplicates(
    h: LedgerHarness, qbo: tuple[FakeQuickBooks, str]
) -> None:
    fake, _ = qbo
    seed(fake)
    for n in range(20, 27):
        fake.invoice(str(n), "2", "1.00")
    queries = 0

    def fail_after_three_invoice_pages(request: Any) -> tuple[int, dict[str, str]] | None:
        nonlocal queries
        if "FROM Invoice" in unquote_plus(str(request.url)):
            queries += 1
            if queries > 3:
                return (500, {})
        return None

    fake.fail_when = fail_after_three_invoice_pages
    out = await sync(h)
    assert out["status"] == 502 and not out["succeeded"] and "HTTP 500" in out["error"]
    partial = len((await h.get("/v1/invoices", params={"limit": 100})).json()["items"])
    assert 0 < partial < 10
    fresh = (await h.get("/v1/freshness")).json()["connectors"][0]
    assert fresh["last_successful_sync_at"] is None and "HTTP 500" in fresh["last_error"]
    fake.fail_when = None
    out = await sync(h)
    assert out["succeeded"], out
    assert len((await h.get("/v1/invoices", params={"limit": 100})).json()["items"]) == 10
    created = [e.data.invoice_id for e in await h.events() if e.type == "invoice.created"]
    assert sorted(created) == sorted({*created}) and len(created) == 10
    synced = [e for e in await h.events() if e.type == "ledger.synced"]
    assert [s.data.succeeded for s in synced] == [False, True]
    assert all(s.data.scheduled for s in synced)  # an enabled connector syncs on a schedule


async def test_a_garbage_record_is_quarantined_and_the_sync_goes_on(
    h: LedgerHarness, qbo: tuple[FakeQuickBooks, str]
) -> None:
    fake, _ = qbo
    seed(fake)
    bad = fake.invoice("14", "1", "10.00")
    bad["TotalAmt"] = "ten dollars"
    bad2 = fake.invoice("15", "1", "10.00")
    del bad2["CustomerRef"]
    out = await sync(h)
    assert out["succeeded"] and out["quarantined"] >= 2, out  # backfill, then the CDC overlap sees them again
    q = (await h.get("/v1/connectors/quickbooks/quarantine")).json()["items"]
    assert {(i["entity_id"], i["error"].split(":")[0]) for i in q} == {("14", "TotalAmt"), ("15", "CustomerRef.value")}
    assert (await h.get("/v1/invoices/10")).status_code == 200
    assert (await h.get("/v1/invoices/14")).status_code == 404


@pytest.mark.parametrize("fmt", ["legacy", "cloudevents"])
async def test_signed_webhooks_are_acknowledged_then_applied(
    h: LedgerHarness, qbo: tuple[FakeQuickBooks, str], fmt: str
) -> None:
    fake, _ = qbo
    seed(fake)
    await sync(h)
    fake.invoice("16", "2", "42.00")
    fake.void_invoice("11")
    changes = [("Invoice", "16", "Create"), ("Invoice", "11", "Void")]
    body = fake.legacy_webhook(changes) if fmt == "legacy" else fake.cloudevents_webhook(changes)
    async with h.client(None) as anon:
        r = await anon.post("/webhooks/quickbooks", content=body,
                            headers={"intuit-signature": fake.sign(body, VERIFIER), "content-type": "application/json"})  # fmt: skip
    assert r.status_code == 200
    await wait_until_quiet([h.service.runtime])
    assert (await h.get("/v1/invoices/16")).json()["total"] == "42.00"
    assert (await h.get("/v1/invoices/11")).json()["status"] == "void"


async def test_a_forged_webhook_is_401_and_writes_nothing(h: LedgerHarness, qbo: tuple[FakeQuickBooks, str]) -> None:
    fake, _ = qbo
    seed(fake)
    body = fake.legacy_webhook([("Invoice", "10", "Create")])
    async with h.client(None) as anon:
        for sig in (fake.sign(body, "not-the-verifier"), "", fake.sign(body + b" ", VERIFIER)):
            r = await anon.post("/webhooks/quickbooks", content=body, headers={"intuit-signature": sig})
            assert r.status_code == 401
    await wait_until_quiet([h.service.runtime])
    async with h.service.runtime.sessions() as s:
        assert (await s.execute(select(orm.webhook_notices))).first() is None
    assert (await h.get("/v1/invoices/10")).status_code == 404
    assert await h.event_types() == []


async def test_reconciliation_corrects_a_missed_void_and_a_missed_payment(
    h: LedgerHarness, qbo: tuple[FakeQuickBooks, str]
) -> None:
    fake, _ = qbo
    seed(fake)
    await sync(h)
    fake.void_invoice("12")  # no webhook reached us
    fake.payment("52", "1", "59.95", {"11": "59.95"})
    async with h.client(ADMIN) as api:
        r = await api.post("/v1/connectors/quickbooks/reconcile")
    assert r.status_code == 200 and r.json()["drift"] == 0, r.text
    assert (await h.get("/v1/invoices/12")).json()["status"] == "void"
    assert (await h.get("/v1/invoices/11")).json()["status"] == "paid"
    tail = await h.event_types()
    assert "invoice.voided" in tail and tail.count("payment.applied") == 2
    assert (await h.get("/v1/connectors/quickbooks/drift")).json()["items"] == []


async def test_connector_admin_needs_an_admin_key_and_never_returns_secrets(h: LedgerHarness) -> None:
    async with h.client("acme-api-key") as api:
        assert (await api.post("/v1/connectors/quickbooks/sync")).status_code == 403
    async with h.client(ADMIN) as api:
        listed = (await api.get("/v1/connectors")).json()["items"]
    assert listed[0]["credentials"] == ["client_secret", "refresh_token"]
    async with h.client("globex-admin-key") as api:
        assert (await api.post("/v1/connectors/quickbooks/sync")).status_code == 404
    assert Decimal("1")  # keep the import honest
