"""Xero connector against a fake that speaks Xero's JSON (MS dates, If-Modified-Since, paging) over a socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from dunning_kit.clock import SimulatedClock
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, start_service, wait_until_quiet
from ledger_sync.adapters import orm
from ledger_sync.connectors.base import MappingError
from ledger_sync.connectors.xero import ms_json_datetime
from ledger_sync.devfakes.server import serving
from ledger_sync.devfakes.xero import FakeXero
from ledger_sync.entrypoints.schemas import ExportInvoice
from ledger_sync.testing import LedgerHarness

TENANT = "a3f2c1d0-0000-4000-8000-000000000001"
KEY = "xero-webhook-key"
ADMIN = "acme-admin-key"


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest_asyncio.fixture
async def fx(clock: SimulatedClock) -> AsyncIterator[tuple[FakeXero, str]]:
    fake = FakeXero(TENANT, clock.now)
    async with serving(fake.app) as base:
        yield fake, base


@pytest_asyncio.fixture
async def h(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock, fx: tuple[FakeXero, str]
) -> AsyncIterator[LedgerHarness]:
    svc = await start_service(spec("ledger-sync"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers,
                              clock=clock, overrides={"xero_webhook_key": KEY})  # fmt: skip
    svc.runtime.objects.sync.sleep = Sleeps()
    harness = LedgerHarness(svc, broker.bootstrap_servers)
    fake, base = fx
    async with harness.client(ADMIN) as api:
        put = await api.put("/v1/connectors/xero", json={
            "external_account": TENANT,
            "config": {"base_url": base, "token_url": f"{base}/connect/token", "client_id": fake.client_id},
            "credentials": {"client_secret": fake.client_secret, "refresh_token": fake.refresh_token},
        })  # fmt: skip
        assert put.status_code == 200, put.text
    try:
        yield harness
    finally:
        await svc.stop()


def seed(fake: FakeXero) -> None:
    fake.contact("c-1", "Initech Ltd", "ap@initech.example")
    fake.invoice("i-1", "c-1", "250.00")
    fake.invoice("i-2", "c-1", "80.00")
    fake.invoice("i-3", "c-1", "99.00", status="DRAFT")
    fake.invoice("b-1", "c-1", "10.00", type_="ACCPAY")  # a bill, not a receivable
    fake.payment("p-1", "i-1", "100.00")


async def sync(h: LedgerHarness) -> dict[str, Any]:
    async with h.client(ADMIN) as api:
        r = await api.post("/v1/connectors/xero/sync")
    return {"status": r.status_code, **r.json()}


def test_ms_json_dates_parse_to_utc() -> None:
    assert ms_json_datetime("/Date(1511827200000+0000)/", "Date") == datetime(2017, 11, 28, tzinfo=UTC)
    assert ms_json_datetime("/Date(1518685950940+1300)/", "x").year == 2018
    with pytest.raises(MappingError):
        ms_json_datetime("2017-11-28", "Date")


async def test_backfill_then_incremental_with_if_modified_since_and_polled_payments(
    h: LedgerHarness, fx: tuple[FakeXero, str], clock: SimulatedClock
) -> None:
    fake, _ = fx
    seed(fake)
    out = await sync(h)
    assert out["succeeded"], out
    i1 = (await h.get("/v1/invoices/i-1")).json()
    assert (i1["balance"], i1["issue_date"], i1["currency"]) == ("150.00", "2026-03-01", "NZD")
    assert (await h.get("/v1/invoices/i-3")).status_code == 404
    assert (await h.get("/v1/invoices/b-1")).status_code == 404
    assert (await h.get("/v1/customers/c-1")).json()["country"] == "NZ"
    assert all(hd.get("xero-tenant-id") == TENANT for p, hd in fake.requests if p.startswith("/api.xro"))
    clock.advance(minutes=10)
    fake.payment("p-2", "i-1", "150.00")
    fake.void("i-2")
    out = await sync(h)
    assert out["succeeded"], out
    assert any("if-modified-since" in hd for p, hd in fake.requests if p.startswith("/api.xro"))
    assert (await h.get("/v1/invoices/i-1")).json()["status"] == "paid"
    assert (await h.get("/v1/invoices/i-2")).json()["status"] == "void"
    assert (await sync(h))["changed"] == 0
    # A payment deleted in Xero is a reversal: the ledger's export dates it, and the void, as their events.
    clock.advance(seconds=5)  # not as far as the scheduled sync
    fake.payment("p-2", "i-1", "150.00", status="DELETED")
    out = await sync(h)
    assert out["succeeded"], out
    events = await h.events()
    (reversal,) = [e for e in events if e.type == "payment.reversed"]
    (void,) = [e for e in events if e.type == "invoice.voided"]
    exported = (await h.get("/v1/exports/invoices")).json()["items"]
    items = {i["invoice_id"]: ExportInvoice.model_validate(i) for i in exported}
    assert [(p.payment_id, p.amount, p.reversed_at) for p in items["i-1"].payments if p.payment_id == "p-2"] == [
        ("p-2", "150.00", reversal.occurred_at)
    ]
    assert items["i-2"].closed is not None and items["i-2"].closed.closed_at == void.occurred_at


async def test_webhooks_intent_to_receive_and_forgery(h: LedgerHarness, fx: tuple[FakeXero, str]) -> None:
    fake, _ = fx
    seed(fake)
    await sync(h)
    probe = fake.webhook([])
    async with h.client(None) as anon:
        ok = await anon.post("/webhooks/xero", content=probe, headers={"x-xero-signature": fake.sign(probe, KEY)})
        bad = await anon.post("/webhooks/xero", content=probe, headers={"x-xero-signature": fake.sign(probe, "wrong")})
        assert (ok.status_code, ok.content) == (200, b"")
        # Xero's intent-to-receive looks at the status only; the body is the platform's problem (RFC 9457).
        assert (bad.status_code, bad.headers["content-type"]) == (401, "application/problem+json"), bad.text
        assert bad.json()["instance"] == "/webhooks/xero" and "signature" in bad.json()["detail"]
        fake.invoice("i-2", "c-1", "95.00")
        body = fake.webhook([("INVOICE", "i-2")])
        forged = await anon.post("/webhooks/xero", content=body, headers={"x-xero-signature": fake.sign(body, "nope")})
        assert forged.status_code == 401
        async with h.service.runtime.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(orm.webhook_notices)) == 0
        good = await anon.post("/webhooks/xero", content=body, headers={"x-xero-signature": fake.sign(body, KEY)})
        assert good.status_code == 200
    await wait_until_quiet([h.service.runtime])
    assert (await h.get("/v1/invoices/i-2")).json()["total"] == "95.00"


async def test_429_with_retry_after_and_quarantine(h: LedgerHarness, fx: tuple[FakeXero, str]) -> None:
    fake, _ = fx
    seed(fake)
    fake.invoice("i-9", "c-1", "5.00")["Date"] = "2026-03-01"  # not an MS JSON date
    fake.fail_next = [(429, {"Retry-After": "11"})]
    out = await sync(h)
    assert out["succeeded"] and out["quarantined"] >= 1, out
    assert h.service.runtime.objects.sync.sleep == [11.0]
    q = (await h.get("/v1/connectors/xero/quarantine")).json()["items"]
    assert [(i["entity_id"], i["error"].split(":")[0]) for i in q] == [("i-9", "Date")]
