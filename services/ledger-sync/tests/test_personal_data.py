"""A customer's personal data in ledger-sync: the export (with the peers' pieces), the erasure, the tombstone that
every later write honours (API, CSV import, ERP sync), and bad input. Real PostgreSQL, the real broker; the peers
are small servers speaking the export contract on real sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from dunning_kit.clock import SimulatedClock
from dunning_kit.embedded import free_port
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, start_service, wait_until_quiet
from ledger_sync.adapters import orm
from ledger_sync.devfakes.quickbooks import FakeQuickBooks
from ledger_sync.devfakes.server import serving
from ledger_sync.devfakes.stripe import FakeStripe
from ledger_sync.domain.personal_data import is_pseudonym
from ledger_sync.testing import LedgerHarness

ADMIN = "acme-admin-key"
NAME, EMAIL, PHONE = "Gerda Vogelsang", "gerda.vogelsang@example.org", "+49 30 5550 1234"
DISPUTE_NOTE = "Frau Vogelsang says the parcel never reached Lindenstrasse 7"
PERSON = (NAME, EMAIL, PHONE, DISPUTE_NOTE, "Gerda", "Vogelsang", "Lindenstrasse")
CUSTOMER = {
    "id": "C-77",
    "name": NAME,
    "contacts": [{"name": NAME, "email": EMAIL, "phone": PHONE, "role": "billing"}],
    "tags": ["vip-gerda"],
    "segment": "smb",
    "time_zone": "Europe/Berlin",
}
INVOICE = {"id": "INV-77", "customer_id": "C-77", "number": "2026-0077", "currency": "EUR", "total": "250.00",
           "issue_date": "2026-02-01", "due_date": "2026-03-01"}  # fmt: skip
PAYMENT = {"id": "PAY-77", "customer_id": "C-77", "currency": "EUR", "amount": "100.00", "received_on": "2026-03-02",
           "allocations": [{"invoice_id": "INV-77", "amount": "100.00"}]}  # fmt: skip


class FakePeer:
    """A peer service's export route: answers the contract (or a chosen status) and records what it was sent."""

    def __init__(self, name: str, status: int = 200) -> None:
        self.name = name
        self.status = status
        self.authorizations: list[str | None] = []
        self.app = FastAPI()

        @self.app.get("/v1/customers/{customer_id}/personal-data")
        async def piece(customer_id: str, request: Request) -> JSONResponse:
            self.authorizations.append(request.headers.get("authorization"))
            if self.status != 200:
                return JSONResponse({"detail": "boom"}, status_code=self.status)
            data = {"deliveries": [{"to": EMAIL, "body": f"Dear {NAME}"}]}
            return JSONResponse({"service": name, "customer_id": customer_id, "erased": False, "data": data})


async def _ledger(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock, **overrides: Any
) -> AsyncIterator[LedgerHarness]:
    svc = await start_service(
        spec("ledger-sync"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
        overrides={"personal_data_peers": "", **overrides},
    )  # fmt: skip
    try:
        yield LedgerHarness(svc, broker.bootstrap_servers)
    finally:
        await svc.stop()


@pytest_asyncio.fixture
async def h(database_url: str, broker: BrokerBackend, clock: SimulatedClock) -> AsyncIterator[LedgerHarness]:
    """ledger-sync with no peers: the export holds its own piece."""
    async for harness in _ledger(database_url, broker, clock):
        yield harness


async def customer_with_money(h: LedgerHarness) -> None:
    assert (await h.post("/v1/customers", CUSTOMER)).status_code == 201
    assert (await h.post("/v1/invoices", INVOICE)).status_code == 201
    assert (await h.post("/v1/payments", PAYMENT)).status_code == 201
    assert (await h.post("/v1/invoices/INV-77/dispute", {"reason": DISPUTE_NOTE})).status_code == 200


async def export(h: LedgerHarness, customer_id: str = "C-77", key: str = ADMIN) -> Any:
    return await h.get(f"/v1/customers/{customer_id}/personal-data", key=key)


async def erase(h: LedgerHarness, customer_id: str = "C-77", key: str = ADMIN) -> Any:
    async with h.client(key) as api:
        return await api.delete(f"/v1/customers/{customer_id}/personal-data")


def personal_values_in(document: Any) -> list[str]:
    text = json.dumps(document)
    return [value for value in PERSON if value in text]


# ---------------------------------------------------------------------------------------------- export


async def test_export_holds_the_customer_its_money_facts_and_notes(h: LedgerHarness) -> None:
    await customer_with_money(h)
    r = await export(h)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["customer_id"], doc["tenant_id"], set(doc["services"])) == ("C-77", "acme", {"ledger-sync"})
    assert doc["generated_at"].startswith("2026-03-02T09:00")
    piece = doc["services"]["ledger-sync"]
    assert (piece["service"], piece["customer_id"], piece["erased"]) == ("ledger-sync", "C-77", False)
    data = piece["data"]
    assert data["customer"][0]["name"] == NAME
    assert data["customer"][0]["contacts"] == [{"name": NAME, "email": EMAIL, "phone": PHONE, "role": "billing"}]
    assert data["customer"][0]["tags"] == ["vip-gerda"]
    assert [(i["invoice_id"], i["total"], i["balance"], i["disputed"]) for i in data["invoices"]] == [
        ("INV-77", "250.00", "150.00", True)
    ]
    assert [(p["payment_id"], p["amount"]) for p in data["payments"]] == [("PAY-77", "100.00")]
    assert data["notes"] == [{"document": "invoice", "id": "INV-77", "field": "dispute_reason", "text": DISPUTE_NOTE}]
    assert data["erasure"] == [] and data["erp_records"] == [] and data["credit_notes"] == []


async def test_export_gathers_every_peers_piece_asked_with_the_callers_key(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> None:
    notifier, promises = FakePeer("notifier"), FakePeer("promise-tracker")
    async with serving(notifier.app) as n_url, serving(promises.app) as p_url:
        async for h in _ledger(
            database_url, broker, clock, personal_data_peers=f"notifier={n_url}, promise-tracker={p_url}/"
        ):
            await customer_with_money(h)
            doc = (await export(h)).json()
            assert set(doc["services"]) == {"ledger-sync", "notifier", "promise-tracker"}
            assert doc["services"]["notifier"]["data"]["deliveries"] == [{"to": EMAIL, "body": f"Dear {NAME}"}]
            assert doc["services"]["promise-tracker"]["service"] == "promise-tracker"
    assert notifier.authorizations == promises.authorizations == [f"Bearer {ADMIN}"]


async def test_a_peer_that_fails_or_cannot_be_reached_fails_the_export_naming_it(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> None:
    broken = FakePeer("notifier", status=500)
    async with serving(broken.app) as url:
        gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        for peers, status, peer in (
            (f"notifier={url}", 502, "notifier"),
            (f"policy-engine={gone}", 503, "policy-engine"),
        ):
            async for h in _ledger(database_url, broker, clock, personal_data_peers=peers):
                await h.post("/v1/customers", CUSTOMER)
                r = await export(h)
                assert r.status_code == status, r.text
                assert r.headers["content-type"].startswith("application/problem+json")
                assert r.json()["peer"] == peer and peer in r.json()["detail"]
                assert (await h.get("/v1/customers/C-77")).status_code == 200  # the service goes on serving


# ---------------------------------------------------------------------------------------------- erasure


async def test_erasure_pseudonymises_the_customer_keeps_the_money_and_tells_the_other_services(
    h: LedgerHarness, clock: SimulatedClock
) -> None:
    await customer_with_money(h)
    r = await erase(h)
    assert r.status_code == 202, r.text
    body = r.json()
    pseudonym = body["pseudonym"]
    assert is_pseudonym(pseudonym) and body["customer_id"] == "C-77"
    assert body["erased_at"] == clock.now().isoformat()

    customer = (await h.get("/v1/customers/C-77")).json()
    assert (customer["name"], customer["contacts"], customer["tags"]) == (pseudonym, [], [])
    assert (customer["segment"], customer["time_zone"]) == ("smb", "Europe/Berlin")  # identifies no one: kept
    invoice = (await h.get("/v1/invoices/INV-77")).json()
    assert (invoice["total"], invoice["balance"], invoice["disputed"], invoice["dispute_reason"]) == (
        "250.00", "150.00", True, None,
    )  # fmt: skip
    assert (await h.get("/v1/payments/PAY-77")).json()["amount"] == "100.00"

    erased = [e for e in await h.events() if e.type == "customer.erased"]
    assert len(erased) == 1 and erased[0].subject == "C-77"
    assert (erased[0].data.pseudonym, erased[0].data.reason) == (pseudonym, "data_subject_request")

    doc = (await export(h)).json()
    piece = doc["services"]["ledger-sync"]
    assert piece["erased"] is True and piece["data"]["erasure"][0]["pseudonym"] == pseudonym
    assert piece["data"]["notes"] == []
    assert personal_values_in(doc) == []


async def test_erasure_leaves_no_personal_value_in_the_ledgers_tables(h: LedgerHarness) -> None:
    """Raw rows too: the customer, notes, raw ERP payloads (quarantine, webhook notices) naming the customer, and
    the customer.upserted events still in the outbox or its dead letters (a replay would bring them back)."""
    await customer_with_money(h)
    now = h.service.runtime.clock.now()
    async with h.service.runtime.sessions() as s, s.begin():
        await s.execute(orm.quarantine.insert().values(
            tenant_id="acme", connector="quickbooks", entity="invoice", entity_id="900", error="TotalAmt: bad",
            payload={"Id": "900", "CustomerRef": {"value": "C-77", "name": NAME}}, quarantined_at=now,
        ))  # fmt: skip
        await s.execute(orm.webhook_notices.insert().values(
            tenant_id="acme", connector="stripe", entity="customer", entity_id="C-77", operation="customer.updated",
            payload={"id": "C-77", "email": EMAIL}, received_at=now, due_at=now, processed_at=now,
        ))  # fmt: skip
        other = {"Id": "901", "CustomerRef": {"value": "C-1"}, "note": "someone else"}
        await s.execute(orm.quarantine.insert().values(
            tenant_id="acme", connector="quickbooks", entity="invoice", entity_id="901", error="x", payload=other,
            quarantined_at=now,
        ))  # fmt: skip
    before = (await export(h)).json()["services"]["ledger-sync"]["data"]["erp_records"]
    assert [(r["kind"], r["entity_id"]) for r in before] == [("quarantined", "900"), ("webhook_notice", "C-77")]

    assert (await erase(h)).status_code == 202
    await wait_until_quiet([h.service.runtime])
    dump = await h.service.runtime.engine.connect()
    try:
        rows: list[str] = []
        for table in ("customers", "invoices", "payments", "quarantine", "webhook_notices", "outbox",
                      "outbox_dead_letters"):  # fmt: skip
            result = await dump.exec_driver_sql(f"SELECT t::text FROM ledger_sync.{table} t")
            rows += [row[0] for row in result]
            if table == "outbox":
                payloads = await dump.exec_driver_sql("SELECT convert_from(payload, 'UTF8') FROM ledger_sync.outbox")
                rows += [row[0] for row in payloads]
    finally:
        await dump.close()
    leaked = [v for v in PERSON if any(v in row for row in rows)]
    assert leaked == []
    async with h.service.runtime.sessions() as s:
        untouched = await s.scalar(select(orm.quarantine.c.payload).where(orm.quarantine.c.entity_id == "901"))
    assert untouched == other  # a record of another customer keeps its payload


async def test_a_second_erasure_is_a_no_op_that_answers_the_same(h: LedgerHarness, clock: SimulatedClock) -> None:
    await customer_with_money(h)
    first = await erase(h)
    clock.advance(timedelta(hours=3))
    second = await erase(h)
    assert (second.status_code, second.json()) == (first.status_code, first.json()) == (202, first.json())
    assert [e.type for e in await h.events()].count("customer.erased") == 1


async def test_unknown_customer_is_404_for_export_and_erasure_and_another_tenants_too(h: LedgerHarness) -> None:
    await h.post("/v1/customers", CUSTOMER)
    for key, customer_id in ((ADMIN, "C-404"), ("globex-admin-key", "C-77")):
        for r in (await export(h, customer_id, key), await erase(h, customer_id, key)):
            assert r.status_code == 404, r.text
            assert r.json()["errors"][0]["field"] == "customer_id"
    assert (await h.get("/v1/customers/C-77")).json()["name"] == NAME  # nothing was erased
    assert "customer.erased" not in await h.event_types()


async def test_bad_input_and_a_non_admin_key_are_refused_and_change_nothing(h: LedgerHarness) -> None:
    await h.post("/v1/customers", CUSTOMER)
    too_long = "C" * 201
    for r in (await export(h, too_long), await erase(h, too_long), await erase(h, "%20")):
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "customer_id"
    nul = await erase(h, "C-77%00")
    assert nul.status_code == 422  # the edge guard: a NUL byte reaches no query
    for r in (await export(h, key="acme-api-key"), await erase(h, key="acme-api-key")):
        assert r.status_code == 403
    async with h.client(None) as api:
        assert (await api.delete("/v1/customers/C-77/personal-data")).status_code == 401
    assert (await h.get("/v1/customers/C-77")).json()["name"] == NAME
    assert "customer.erased" not in await h.event_types()


# ---------------------------------------------------------------------------------------------- the tombstone


async def erased_customer(h: LedgerHarness) -> str:
    await customer_with_money(h)
    return str((await erase(h)).json()["pseudonym"])


def upserts_of(events: list[Any], customer_id: str = "C-77") -> list[Any]:
    return [e.data for e in events if e.type == "customer.upserted" and e.subject == customer_id]


async def test_an_api_upsert_of_an_erased_customer_keeps_the_pseudonym_and_its_money_still_flows(
    h: LedgerHarness,
) -> None:
    pseudonym = await erased_customer(h)
    before = len(upserts_of(await h.events()))
    again = await h.post("/v1/customers", {**CUSTOMER, "credit_hold": True, "email": EMAIL})
    assert again.status_code == 200 and again.json()["changed"], again.text
    stored = (await h.get("/v1/customers/C-77")).json()
    assert (stored["name"], stored["contacts"], stored["tags"], stored["credit_hold"]) == (pseudonym, [], [], True)
    emitted = upserts_of(await h.events())[before:]
    assert [(u.name, u.contacts, u.tags) for u in emitted] == [(pseudonym, [], [])]
    # The same personal data sent again changes nothing and emits nothing.
    assert not (await h.post("/v1/customers", {**CUSTOMER, "credit_hold": True})).json()["changed"]
    new_invoice = await h.post("/v1/invoices", {**INVOICE, "id": "INV-78", "number": "2026-0078"})
    assert new_invoice.status_code == 201 and new_invoice.json()["events"] == ["invoice.created"]


async def test_a_csv_import_of_an_erased_customer_does_not_bring_the_person_back(h: LedgerHarness) -> None:
    pseudonym = await erased_customer(h)
    csv = f"id,name,email,phone,segment\nC-77,{NAME},{EMAIL},{PHONE},enterprise\nC-78,Other Person,o@example.org,,\n"
    async with h.client() as api:
        r = await api.post("/v1/imports/customers", content=csv, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    stored = (await h.get("/v1/customers/C-77")).json()
    assert (stored["name"], stored["contacts"], stored["segment"]) == (pseudonym, [], "enterprise")
    assert (await h.get("/v1/customers/C-78")).json()["name"] == "Other Person"  # everyone else imports as usual
    assert [u.name for u in upserts_of(await h.events())][-1] == pseudonym
    assert personal_values_in((await export(h)).json()) == []


async def test_an_erp_sync_of_an_erased_customer_does_not_bring_the_person_back(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> None:
    fake = FakeQuickBooks("9130350000000001", clock.now)
    async with serving(fake.app) as base:
        async for h in _ledger(database_url, broker, clock):
            async with h.client(ADMIN) as api:
                put = await api.put("/v1/connectors/quickbooks", json={
                    "external_account": fake.realm,
                    "config": {"base_url": base, "token_url": f"{base}/oauth2/v1/tokens/bearer",
                               "client_id": fake.client_id},
                    "credentials": {"client_secret": fake.client_secret, "refresh_token": fake.refresh_token},
                })  # fmt: skip
                assert put.status_code == 200, put.text

                async def sync() -> Any:
                    r = await api.post("/v1/connectors/quickbooks/sync")
                    assert r.status_code == 200 and r.json()["succeeded"], r.text
                    return r.json()

                fake.customer("1", NAME, EMAIL)
                fake.invoice("10", "1", "150.00")
                await sync()
                assert (await api.delete("/v1/customers/1/personal-data")).status_code == 202
                pseudonym = (await h.get("/v1/customers/1")).json()["name"]
                # The person changes their address in the ERP, gets a new invoice, and one record fails mapping.
                moved = fake.customer("1", NAME, "gerda@new.example.org")
                moved["BillAddr"] = {"Line1": "Lindenstrasse 7", "City": "Berlin", "Country": "DE"}
                fake.invoice("11", "1", "80.00")
                broken = fake.invoice("12", "1", "10.00")
                broken["TotalAmt"] = "ten euros"
                broken["BillEmail"] = {"Address": EMAIL}
                await sync()
                stored = (await h.get("/v1/customers/1")).json()
                assert (stored["name"], stored["contacts"]) == (pseudonym, [])
                assert (await h.get("/v1/invoices/11")).json()["total"] == "80.00"  # the money still flows
                quarantined = (await api.get("/v1/connectors/quickbooks/quarantine")).json()["items"]
                assert [(q["entity_id"], q["payload"]) for q in quarantined] == [("12", None)]
                doc = (await api.get("/v1/customers/1/personal-data")).json()
                leaked = (NAME, EMAIL, "gerda@new.example.org", "Lindenstrasse")
                assert [v for v in leaked if v in json.dumps(doc)] == []
                after = upserts_of(await h.events(), "1")[1:]
                assert [(u.name, u.contacts, u.country) for u in after] == [(pseudonym, [], "DE")]


async def test_a_webhook_about_an_erased_customer_keeps_no_payload_and_brings_nobody_back(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> None:
    fake = FakeStripe(clock.now)
    async with serving(fake.app) as base:
        async for h in _ledger(database_url, broker, clock):
            async with h.client(ADMIN) as api:
                put = await api.put("/v1/connectors/stripe", json={
                    "config": {"base_url": base},
                    "credentials": {"api_key": fake.api_key, "webhook_secret": fake.webhook_secret},
                })  # fmt: skip
                assert put.status_code == 200, put.text
                fake.customer("cus_A", NAME, EMAIL, "DE")
                assert (await api.post("/v1/connectors/stripe/sync")).json()["succeeded"]
                assert (await api.delete("/v1/customers/cus_A/personal-data")).status_code == 202
            pseudonym = (await h.get("/v1/customers/cus_A")).json()["name"]

            fake.customer("cus_A", NAME, "gerda@new.example.org", "DE")  # Stripe sends the object in the event
            body, signature = fake.signed(fake.events[-1])
            async with h.client(None) as anon:
                r = await anon.post("/webhooks/stripe/acme", content=body, headers={"Stripe-Signature": signature})
                assert r.status_code == 200, r.text
            await wait_until_quiet([h.service.runtime])
            async with h.service.runtime.sessions() as s:
                notices = (await s.execute(select(orm.webhook_notices))).all()
            assert [(n.entity_id, n.processed_at is not None, n.payload) for n in notices] == [("cus_A", True, None)]
            assert (await h.get("/v1/customers/cus_A")).json()["name"] == pseudonym
            doc = (await export(h, "cus_A")).json()
            assert [v for v in (NAME, EMAIL, "gerda@new.example.org") if v in json.dumps(doc)] == []
