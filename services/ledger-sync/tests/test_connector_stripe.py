"""Stripe connector against a fake that speaks Stripe's JSON over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlalchemy import func, select

from dunning_kit.clock import SimulatedClock
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, start_service, wait_until_quiet
from ledger_sync.adapters import orm
from ledger_sync.devfakes.server import serving
from ledger_sync.devfakes.stripe import FakeStripe
from ledger_sync.entrypoints.schemas import ExportInvoice
from ledger_sync.testing import LedgerHarness

ADMIN = "acme-admin-key"


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest_asyncio.fixture
async def fake_stripe(clock: SimulatedClock) -> AsyncIterator[tuple[FakeStripe, str]]:
    fake = FakeStripe(clock.now)
    async with serving(fake.app) as base:
        yield fake, base


@pytest_asyncio.fixture
async def h(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock, fake_stripe: tuple[FakeStripe, str]
) -> AsyncIterator[LedgerHarness]:
    svc = await start_service(
        spec("ledger-sync"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock
    )
    svc.runtime.objects.sync.sleep = Sleeps()
    harness = LedgerHarness(svc, broker.bootstrap_servers)
    fake, base = fake_stripe
    async with harness.client(ADMIN) as api:
        put = await api.put(
            "/v1/connectors/stripe",
            json={"config": {"base_url": base, "page_size": 2},
                  "credentials": {"api_key": fake.api_key, "webhook_secret": fake.webhook_secret}},
        )  # fmt: skip
        assert put.status_code == 200, put.text
    try:
        yield harness
    finally:
        await svc.stop()


def seed(fake: FakeStripe) -> None:
    fake.customer("cus_A", "Initech GmbH", "ap@initech.example", "DE")
    fake.customer("cus_B", "Hooli", "ap@hooli.example")
    fake.invoice("in_1", "cus_A", 10000)
    fake.invoice("in_2", "cus_A", 5000)
    fake.pay("in_2", 2000)
    fake.invoice("in_3", "cus_B", 700)
    fake.pay("in_3")
    fake.invoice("in_4", "cus_B", 900)
    fake.void("in_4")
    fake.invoice("in_5", "cus_B", 100, status="draft")
    fake.credit_note("cn_1", "in_1", 1500)


async def sync(h: LedgerHarness) -> dict[str, Any]:
    async with h.client(ADMIN) as api:
        r = await api.post("/v1/connectors/stripe/sync")
    return {"status": r.status_code, **r.json()}


async def balance(h: LedgerHarness, invoice_id: str) -> tuple[str, str]:
    inv = (await h.get(f"/v1/invoices/{invoice_id}")).json()
    return inv["status"], inv["balance"]


async def test_backfill_by_list_matches_stripes_amount_remaining(
    h: LedgerHarness, fake_stripe: tuple[FakeStripe, str]
) -> None:
    fake, _ = fake_stripe
    seed(fake)
    out = await sync(h)
    assert out["succeeded"], out
    assert await balance(h, "in_1") == ("open", "85.00")  # 100.00 - credit note 15.00
    assert await balance(h, "in_2") == ("open", "30.00")
    assert await balance(h, "in_3") == ("paid", "0.00")
    assert await balance(h, "in_4") == ("void", "0.00")
    assert (await h.get("/v1/invoices/in_5")).status_code == 404, "drafts are not receivables"
    customer = (await h.get("/v1/customers/cus_A")).json()
    assert (customer["country"], customer["locale"]) == ("DE", "de")
    types = await h.event_types()
    assert types.count("invoice.created") == 4 and types.count("credit_note.applied") == 1
    assert types.count("invoice.voided") == 1
    assert (await sync(h))["changed"] == 0


async def test_incremental_sync_reads_the_events_list(
    h: LedgerHarness, fake_stripe: tuple[FakeStripe, str], clock: SimulatedClock
) -> None:
    fake, _ = fake_stripe
    seed(fake)
    await sync(h)
    clock.advance(minutes=10)
    fake.pay("in_2")
    fake.uncollectible("in_1")
    fake.invoice("in_6", "cus_B", 4200)
    out = await sync(h)
    assert out["succeeded"], out
    assert any(r.startswith("/v1/events") for r in fake.requests)
    assert await balance(h, "in_2") == ("paid", "0.00")
    assert await balance(h, "in_1") == ("written_off", "0.00")
    assert await balance(h, "in_6") == ("open", "42.00")
    voided = [e for e in await h.events() if e.type == "invoice.voided"]
    assert {(e.data.invoice_id, e.data.status) for e in voided} == {("in_4", "void"), ("in_1", "written_off")}
    # The export dates each close as its event and says what it cancelled (in_1: 100.00 less the 15.00 credit).
    exported = {
        i["invoice_id"]: ExportInvoice.model_validate(i) for i in (await h.get("/v1/exports/invoices")).json()["items"]
    }
    closes = {
        (i.invoice_id, i.closed.status, i.closed.closed_at, i.closed.amount) for i in exported.values() if i.closed
    }
    assert closes == {
        (e.data.invoice_id, e.data.status, e.occurred_at, {"in_1": "85.00", "in_4": "9.00"}[e.data.invoice_id])
        for e in voided
    }


async def test_a_signed_webhook_is_applied(h: LedgerHarness, fake_stripe: tuple[FakeStripe, str]) -> None:
    fake, _ = fake_stripe
    seed(fake)
    await sync(h)
    paid = fake.pay("in_1")
    body, sig = fake.signed(fake.events[-1])
    async with h.client(None) as anon:
        r = await anon.post("/webhooks/stripe/acme", content=body, headers={"Stripe-Signature": sig})
    assert r.status_code == 200 and paid["status"] == "paid"
    await wait_until_quiet([h.service.runtime])
    assert await balance(h, "in_1") == ("paid", "0.00")


async def test_forged_stale_or_misrouted_webhooks_are_401_and_write_nothing(
    h: LedgerHarness, fake_stripe: tuple[FakeStripe, str], clock: SimulatedClock
) -> None:
    fake, _ = fake_stripe
    fake.customer("cus_A", "Initech GmbH")
    fake.invoice("in_1", "cus_A", 10000)
    event = fake.events[-1]
    attempts = [
        ("/webhooks/stripe/acme", fake.signed(event, secret="whsec_wrong")),
        ("/webhooks/stripe/acme", fake.signed(event, at=int(clock.now().timestamp()) - 301)),
        ("/webhooks/stripe/acme", (fake.signed(event)[0] + b" ", fake.signed(event)[1])),
        ("/webhooks/stripe/globex", fake.signed(event)),  # globex has no Stripe connection
    ]
    async with h.client(None) as anon:
        for path, (body, sig) in attempts:
            r = await anon.post(path, content=body, headers={"Stripe-Signature": sig})
            assert r.status_code == 401, path
        assert (await anon.post("/webhooks/stripe/acme", content=fake.signed(event)[0])).status_code == 401
    await wait_until_quiet([h.service.runtime])
    async with h.service.runtime.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(orm.webhook_notices)) == 0
    assert await h.event_types() == []


async def test_an_older_event_delivered_late_does_not_roll_the_invoice_back(
    h: LedgerHarness, fake_stripe: tuple[FakeStripe, str], clock: SimulatedClock
) -> None:
    fake, _ = fake_stripe
    fake.customer("cus_A", "Initech GmbH")
    fake.invoice("in_1", "cus_A", 10000)
    finalized = fake.events[-1]
    clock.advance(seconds=30)
    fake.invoice("in_1", "cus_A", 12000)  # edited before payment: a newer snapshot with a new total
    edited = fake.events[-1]
    async with h.client(None) as anon:
        for ev in (edited, finalized):  # delivered out of order
            body, sig = fake.signed(ev)
            assert (
                await anon.post("/webhooks/stripe/acme", content=body, headers={"Stripe-Signature": sig})
            ).status_code == 200
            await wait_until_quiet([h.service.runtime])
    assert (await h.get("/v1/invoices/in_1")).json()["total"] == "120.00"


async def test_rate_limits_are_retried_and_garbage_is_quarantined(
    h: LedgerHarness, fake_stripe: tuple[FakeStripe, str]
) -> None:
    fake, _ = fake_stripe
    seed(fake)
    fake.invoice("in_bad", "cus_A", 100, currency="xxx")
    fake.fail_next = [(429, {"Retry-After": "3"}), (500, {})]
    out = await sync(h)
    assert out["succeeded"] and out["quarantined"] >= 1, out
    assert h.service.runtime.objects.sync.sleep[0] == 3.0
    q = (await h.get("/v1/connectors/stripe/quarantine")).json()["items"]
    assert [(i["entity_id"], i["error"].split(":")[0]) for i in q] == [("in_bad", "currency")]
    assert await balance(h, "in_2") == ("open", "30.00")
