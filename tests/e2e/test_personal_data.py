"""A debtor's personal data across all four services (GDPR Art. 15 and 17, Reg F's record keeping), end to end on
real PostgreSQL, the broker, a real SMTP socket and the QuickBooks fake, under the shared simulated clock:

the person arrives from the ERP (QuickBooks sync) with an e-mail address and a phone number, is reminded by e-mail,
promises to pay (a collector's note naming them) -> the export from ledger-sync holds every service's piece with the
person's data -> erasure (DELETE on ledger-sync, customer.erased to every service) -> every piece says erased and
none of the person's values is left in any export or table -> dunning stopped with the reason on the policy
engine's timeline, no reminder afterwards -> a later ERP sync and a CSV import of the person bring nothing back
(their money still flows) -> retention: three years on (MESSAGE_RETENTION_DAYS, default 1095) another debtor's
rendered reminders are gone from the notifier while the fact of each contact (channel, time, step) stays.

Contract (README *Personal data*): each service answers `GET /v1/customers/{id}/personal-data` with
`{service, customer_id, erased, data: {section: [records]}}`; ledger-sync's answer gathers the four under
`services` (PERSONAL_DATA_PEERS).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import text

from dunning_kit.clock import SimulatedClock
from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, Platform, poll_until, start_platform, start_service
from ledger_sync.devfakes.quickbooks import FakeQuickBooks
from ledger_sync.devfakes.server import serving

pytestmark = pytest.mark.e2e

BERLIN = ZoneInfo("Europe/Berlin")
ADMIN = "acme-admin-key"
REALM = "9130350000000077"
PEERS = ("policy-engine", "notifier", "promise-tracker")

# The person to be erased: a QuickBooks customer (id "1").
PERSON_ID, INVOICE_ID = "1", "10"
NAME, EMAIL, PHONE = "Gerda Vogelsang", "gerda.vogelsang@example.org", "+49 30 5550 1234"
NEW_EMAIL = "gerda@vogelsang-neu.example.org"
PROMISE_NOTE = "Gerda Vogelsang called: salary comes on the 25th"
PERSON = (NAME, EMAIL, PHONE, NEW_EMAIL, PROMISE_NOTE, "Vogelsang", "5550 1234")

# Another debtor, never erased: their reminders age out under retention.
KEEP = {"id": "C-KEEP", "name": "Brandt Maschinenbau GmbH", "email": "ap@brandt.example", "time_zone": "Europe/Berlin"}


def berlin(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BERLIN).astimezone(UTC)


@pytest_asyncio.fixture
async def qbo(clock: SimulatedClock) -> AsyncIterator[tuple[FakeQuickBooks, str]]:
    fake = FakeQuickBooks(REALM, clock.now)
    async with serving(fake.app) as base:
        yield fake, base


@pytest_asyncio.fixture
async def platform(
    database_url: str,
    broker: BrokerBackend,
    clock: SimulatedClock,
    platform_overrides: dict[str, dict[str, object]],
) -> AsyncIterator[Platform]:
    """The four services; ledger-sync started last, told where its peers listen (PERSONAL_DATA_PEERS)."""
    stack = await start_platform(
        database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
        overrides=platform_overrides, only=PEERS,
    )  # fmt: skip
    try:
        peers = ",".join(f"{name}={stack[name].base_url}" for name in PEERS)
        stack.services["ledger-sync"] = await start_service(
            spec("ledger-sync"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
            overrides={"personal_data_peers": peers},
        )  # fmt: skip
        yield stack
    finally:
        await stack.stop()


async def at(platform: Platform, instant: datetime) -> None:
    await platform.wait_until_quiet()
    platform.clock.set(instant)
    await platform.wait_until_quiet()


async def export(platform: Platform, customer_id: str = PERSON_ID) -> dict[str, Any]:
    async with platform["ledger-sync"].client(ADMIN) as api:
        r = await api.get(f"/v1/customers/{customer_id}/personal-data")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def leaked(document: Any) -> list[str]:
    text = json.dumps(document)
    return [value for value in PERSON if value in text]


async def sync(platform: Platform) -> None:
    async with platform["ledger-sync"].client(ADMIN) as api:
        r = await api.post("/v1/connectors/quickbooks/sync")
    assert r.status_code == 200 and r.json()["succeeded"], r.text
    await platform.wait_until_quiet()


async def person_from_the_erp(platform: Platform, fake: FakeQuickBooks, base: str) -> None:
    person = fake.customer(PERSON_ID, NAME, EMAIL)
    person["PrimaryPhone"] = {"FreeFormNumber": PHONE}
    fake.invoice(INVOICE_ID, PERSON_ID, "640.00", txn_date="2026-02-09", due_date="2026-03-09", currency="EUR")
    async with platform["ledger-sync"].client(ADMIN) as api:
        put = await api.put("/v1/connectors/quickbooks", json={
            "external_account": REALM, "enabled": False,  # synced by hand in this test, not on the schedule
            "config": {"base_url": base, "token_url": f"{base}/oauth2/v1/tokens/bearer", "client_id": fake.client_id,
                       "home_currency": "EUR", "default_time_zone": "Europe/Berlin"},
            "credentials": {"client_secret": fake.client_secret, "refresh_token": fake.refresh_token},
        })  # fmt: skip
        assert put.status_code == 200, put.text
    await sync(platform)


async def another_debtor(platform: Platform) -> None:
    async with platform["ledger-sync"].client() as api:
        assert (await api.post("/v1/customers", json=KEEP)).status_code == 201
        created = await api.post("/v1/invoices", json={
            "id": "INV-KEEP", "customer_id": "C-KEEP", "number": "2026-0900", "currency": "EUR", "total": "900.00",
            "issue_date": "2026-02-09", "due_date": "2026-03-09",
        })  # fmt: skip
        assert created.status_code == 201, created.text


async def sent_to(sink: SmtpSink, address: str) -> int:
    return sum(1 for m in sink.received if address in m.rcpt_tos)


async def timeline(platform: Platform, invoice_id: str) -> list[dict[str, Any]]:
    async with platform["policy-engine"].client() as api:
        r = await api.get(f"/v1/invoices/{invoice_id}/timeline", params={"limit": 500})
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def deliveries(platform: Platform, customer_id: str) -> list[dict[str, Any]]:
    async with platform["notifier"].client() as api:
        listed = (await api.get("/v1/deliveries", params={"customer_id": customer_id})).json()["items"]
        return [(await api.get(f"/v1/deliveries/{d['id']}")).json() for d in listed]


async def reminded_and_promised(platform: Platform, smtp_sink: SmtpSink, fake: FakeQuickBooks, base: str) -> None:
    """Both debtors get their reminders (pre-due, due date, first overdue follow-up); the person promises."""
    await person_from_the_erp(platform, fake, base)
    await another_debtor(platform)
    for day in (4, 9, 12):
        await at(platform, berlin(2026, 3, day, 10, 30))
    await poll_until(lambda: sent_to(smtp_sink, EMAIL), what="a reminder to the person")
    await poll_until(lambda: sent_to(smtp_sink, KEEP["email"]), what="a reminder to the other debtor")
    async with platform["promise-tracker"].client() as api:
        r = await api.post("/v1/promises", json={
            "customer_id": PERSON_ID, "invoice_ids": [INVOICE_ID], "amount": "640.00", "currency": "EUR",
            "promised_date": "2026-03-25", "recorded_by": "collector", "note": PROMISE_NOTE,
        })  # fmt: skip
        assert r.status_code == 201, r.text
    await platform.wait_until_quiet()


async def test_the_person_is_exported_erased_everywhere_and_not_brought_back(
    platform: Platform, smtp_sink: SmtpSink, qbo: tuple[FakeQuickBooks, str]
) -> None:
    fake, base = qbo
    await reminded_and_promised(platform, smtp_sink, fake, base)

    # Export: one document, every service's piece, the person's data in it.
    doc = await export(platform)
    assert (doc["customer_id"], doc["tenant_id"]) == (PERSON_ID, "acme")
    assert set(doc["services"]) == {"ledger-sync", *PEERS}
    for name, piece in doc["services"].items():
        assert (piece["service"], piece["customer_id"], piece["erased"]) == (name, PERSON_ID, False), piece
        assert any(piece["data"].values()), f"{name} holds something about the person"
    assert {NAME, EMAIL, PHONE} <= set(leaked(doc["services"]["ledger-sync"]))
    assert EMAIL in leaked(doc["services"]["notifier"])  # the reminders it sent (recipient, rendered bodies)
    assert PROMISE_NOTE in leaked(doc["services"]["promise-tracker"])
    assert doc["services"]["policy-engine"]["data"]["cases"], "the engine's dunning case of the invoice"

    # Erasure: one call; the other services apply customer.erased from the broker.
    async with platform["ledger-sync"].client(ADMIN) as api:
        r = await api.delete(f"/v1/customers/{PERSON_ID}/personal-data")
        assert r.status_code == 202, r.text
        erasure = r.json()
        again = await api.delete(f"/v1/customers/{PERSON_ID}/personal-data")
        assert (again.status_code, again.json()) == (202, erasure)
    pseudonym = erasure["pseudonym"]

    async def erased_everywhere() -> dict[str, Any] | None:
        doc = await export(platform)
        done = all(piece["erased"] for piece in doc["services"].values()) and not leaked(doc)
        return doc if done else None

    doc = await poll_until(erased_everywhere, timeout=30, what="every service to apply the erasure")
    ledger = doc["services"]["ledger-sync"]["data"]
    assert ledger["customer"][0]["name"] == pseudonym and ledger["customer"][0]["contacts"] == []
    assert [(i["invoice_id"], i["total"]) for i in ledger["invoices"]] == [(INVOICE_ID, "640.00")]  # money kept
    assert await tables_holding(platform, PERSON) == {}

    # Dunning stopped, with the reason on the policy engine's timeline; nothing goes out afterwards.
    stops = [e for e in await timeline(platform, INVOICE_ID) if "erased" in (e.get("reason") or "")]
    assert stops, await timeline(platform, INVOICE_ID)
    reminders = await sent_to(smtp_sink, EMAIL)
    for day in (23, 27, 30):  # where follow-ups (and a broken promise's escalation) would have gone out
        await at(platform, berlin(2026, 3, day, 10, 30))
    assert await sent_to(smtp_sink, EMAIL) == reminders

    # A later ERP sync (the person moved and has a new invoice) and a CSV import bring nobody back.
    moved = fake.customer(PERSON_ID, NAME, NEW_EMAIL)
    moved["PrimaryPhone"] = {"FreeFormNumber": PHONE}
    fake.invoice("11", PERSON_ID, "75.00", txn_date="2026-03-30", due_date="2026-04-06", currency="EUR")
    await sync(platform)
    async with platform["ledger-sync"].client() as api:
        csv = f"id,name,email,phone\n{PERSON_ID},{NAME},{EMAIL},{PHONE}\n"
        imported = await api.post("/v1/imports/customers", content=csv, headers={"Content-Type": "text/csv"})
        assert imported.status_code == 200, imported.text
        assert (await api.get("/v1/invoices/11")).json()["total"] == "75.00"  # the money still flows
    await platform.wait_until_quiet()
    doc = await export(platform)
    assert leaked(doc) == [] and all(piece["erased"] for piece in doc["services"].values())
    assert await tables_holding(platform, PERSON) == {}
    await at(platform, berlin(2026, 4, 14, 10, 30))  # invoice 11 is overdue: an erased debtor is never dunned
    assert await sent_to(smtp_sink, EMAIL) == reminders and await sent_to(smtp_sink, NEW_EMAIL) == 0


async def test_retention_deletes_old_rendered_reminders_and_keeps_the_fact_of_each_contact(
    platform: Platform, smtp_sink: SmtpSink
) -> None:
    await another_debtor(platform)
    for day in (4, 9, 12):
        await at(platform, berlin(2026, 3, day, 10, 30))
    await poll_until(lambda: sent_to(smtp_sink, KEEP["email"]), what="the reminders")
    async with platform["ledger-sync"].client() as api:  # paid: dunning ends, no newer reminder follows
        paid = await api.post("/v1/payments", json={
            "id": "PAY-KEEP", "customer_id": "C-KEEP", "currency": "EUR", "amount": "900.00",
            "received_on": "2026-03-13", "allocations": [{"invoice_id": "INV-KEEP", "amount": "900.00"}],
        })  # fmt: skip
        assert paid.status_code == 201, paid.text
    await platform.wait_until_quiet()
    before = await deliveries(platform, "C-KEEP")
    assert before and all(d["body_text"] for d in before), before
    bodies = [d["body_text"] for d in before]
    contacts = (await export(platform, "C-KEEP"))["services"]["policy-engine"]["data"]["contact_attempts"]
    assert contacts

    sent = sorted(datetime.fromisoformat(d["sent_at"]) for d in before)
    # The oldest reminder is just under three years old (MESSAGE_RETENTION_DAYS' default, 1095): all kept.
    await at(platform, sent[0] + timedelta(days=1094))
    assert [d["body_text"] for d in await deliveries(platform, "C-KEEP")] == bodies

    # The newest one is over three years old: every body goes.
    await at(platform, sent[-1] + timedelta(days=1096))

    async def bodies_gone() -> list[dict[str, Any]] | None:
        now = await deliveries(platform, "C-KEEP")
        return now if all(not d.get("body_text") and not d.get("body_html") for d in now) else None

    after = await poll_until(bodies_gone, what="the housekeeping job to delete old rendered bodies")
    # The fact of each contact stays: the caps and Reg F's records need channel, time and step.
    facts = ("id", "channel", "step_id", "status", "sent_at")
    assert sorted(tuple(d[k] for k in facts) for d in after) == sorted(tuple(d[k] for k in facts) for d in before)
    doc = await export(platform, "C-KEEP")
    assert doc["services"]["policy-engine"]["data"]["contact_attempts"] == contacts
    notifier_piece = json.dumps(doc["services"]["notifier"])
    assert not [b for b in bodies if b in notifier_piece]


async def tables_holding(platform: Platform, values: tuple[str, ...]) -> dict[str, list[str]]:
    """Which tables of any service still hold one of `values` in any column.

    Outbox and inbox tables are left out: an event already published stays on the broker under the topic's own
    retention (README *Personal data*), and the relay keeps published rows an hour for operations."""
    found: dict[str, list[str]] = {}
    for name, svc in platform.services.items():
        schema = svc.spec.schema
        async with svc.runtime.engine.connect() as conn:
            listed = await conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = :schema "
                    "AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'outbox%' AND table_name NOT LIKE '%inbox%'"
                ),
                {"schema": schema},
            )
            tables = [row[0] for row in listed]
            for table in tables:
                rows = await conn.exec_driver_sql(f'SELECT t::text FROM "{schema}"."{table}" t')
                dump = "\n".join(row[0] for row in rows)
                hits = [v for v in values if v in dump]
                if hits:
                    found[f"{name}: {table}"] = hits
    return found
