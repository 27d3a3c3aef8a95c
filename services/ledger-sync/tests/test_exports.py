"""The ledger's export (/v1/exports/customers, /v1/exports/invoices), on one service for the whole module: each
invoice's history says exactly what the ledger's events said (amounts, and instants to the microsecond), a walk
while the ledger changes serves every invoice once, pages refuse a bad cursor or limit, tenants stay apart."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeAlias, TypeVar, cast

import pytest_asyncio

from dunning_events.envelope import Envelope, EventData
from dunning_events.events import (
    Allocation,
    CreditNoteApplied,
    DisputeOpened,
    DisputeResolved,
    InvoiceCreated,
    InvoiceUpdated,
    InvoiceVoided,
    PaymentApplied,
    PaymentReversed,
)
from dunning_kit.clock import SimulatedClock
from dunning_kit.page_walk import walk_pages
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, PostgresBackend, RunningService, problem_fields, start_service
from ledger_sync.entrypoints.schemas import ExportCustomer, ExportInvoice
from ledger_sync.testing import LedgerHarness

CLOCK = SimulatedClock(SIM_START)
D = TypeVar("D", bound=EventData)


@pytest_asyncio.fixture(scope="module")
async def ledger(pg_backend: PostgresBackend) -> AsyncIterator[LedgerHarness]:
    broker = BrokerBackend.embedded()
    try:
        svc: RunningService = await start_service(
            spec("ledger-sync"),
            database_url=pg_backend.fresh_database(),
            bootstrap_servers=broker.bootstrap_servers,
            clock=CLOCK,
        )
        try:
            yield LedgerHarness(svc, broker.bootstrap_servers)
        finally:
            await svc.stop()
    finally:
        broker.stop()


async def post(ledger: LedgerHarness, path: str, body: Any, key: str = "acme-api-key") -> None:
    CLOCK.advance(timedelta(hours=5, microseconds=1234))  # every write at its own instant, some microseconds
    answer = await ledger.post(path, body, key=key)
    assert answer.status_code in (200, 201), answer.text


def invoice(invoice_id: str, customer_id: str, total: str) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "customer_id": customer_id,
        "number": invoice_id,
        "currency": "EUR",
        "total": total,
        "issue_date": "2026-01-05",
        "due_date": "2026-02-04",
    }


def payment(payment_id: str, customer_id: str, amount: str, invoice_id: str, on: str) -> dict[str, Any]:
    return {
        "id": payment_id,
        "customer_id": customer_id,
        "currency": "EUR",
        "amount": amount,
        "received_on": on,
        "allocations": [{"invoice_id": invoice_id, "amount": amount}],
    }


async def export(ledger: LedgerHarness, what: str, key: str = "acme-api-key", limit: int = 5000) -> list[Any]:
    pages = await walk_pages(lambda path, **kw: ledger.get(path, key=key, **kw), f"/v1/exports/{what}", limit=limit)
    return [item for page in pages for item in page]


Settling: TypeAlias = PaymentApplied | PaymentReversed | CreditNoteApplied


def about(events: list[Envelope[EventData]], invoice_id: str) -> list[Envelope[EventData]]:
    """The events that touch one invoice, in order."""
    out = []
    for e in events:
        data = e.data
        ids = {getattr(data, "invoice_id", None)} | {a.invoice_id for a in getattr(data, "allocations", [])}
        if invoice_id in ids:
            out.append(e)
    return out


def only(events: list[Envelope[EventData]], kind: type[D]) -> list[Envelope[D]]:
    return [cast(Envelope[D], e) for e in events if isinstance(e.data, kind)]


def allocation(data: Settling, invoice_id: str) -> Allocation:
    return next(a for a in data.allocations if a.invoice_id == invoice_id)


def balance_after(data: EventData, invoice_id: str) -> Decimal:
    """The invoice's balance as an event reported it."""
    if isinstance(data, PaymentApplied | PaymentReversed | CreditNoteApplied):
        return Decimal(allocation(data, invoice_id).invoice_balance_after)
    assert isinstance(data, InvoiceCreated | InvoiceUpdated), data
    return Decimal(data.balance)


async def test_an_invoices_history_is_what_its_events_said(ledger: LedgerHarness) -> None:
    await post(ledger, "/v1/customers", {"id": "C-HIST", "name": "Initech GmbH", "segment": "enterprise"})
    for number, total in (("H-1", "100.00"), ("H-2", "50.00"), ("H-3", "80.00")):
        await post(ledger, "/v1/invoices", invoice(number, "C-HIST", total))
    # H-1: partly paid, a second payment reversed, credited, disputed and resolved.
    await post(ledger, "/v1/payments", payment("P-1", "C-HIST", "30.00", "H-1", "2026-02-01"))
    await post(ledger, "/v1/payments", payment("P-2", "C-HIST", "20.00", "H-1", "2026-02-03"))
    await post(ledger, "/v1/payments/P-2/reverse", {"reason": "bounced"})
    credit = {"id": "CN-1", "customer_id": "C-HIST", "currency": "EUR", "total": "10.00", "issued_on": "2026-02-10",
              "allocations": [{"invoice_id": "H-1", "amount": "10.00"}]}  # fmt: skip
    await post(ledger, "/v1/credit-notes", credit)
    await post(ledger, "/v1/invoices/H-1/dispute", {"reason": "wrong quantity"})
    await post(ledger, "/v1/invoices/H-1/dispute/resolve", {"resolution": "credited"})
    # H-2 partly paid, then voided (the payment goes back to unapplied credit); H-3 partly paid, then written off.
    await post(ledger, "/v1/payments", payment("P-3", "C-HIST", "15.00", "H-2", "2026-02-05"))
    await post(ledger, "/v1/invoices/H-2/void", {"reason": "issued twice"})
    await post(ledger, "/v1/payments", payment("P-4", "C-HIST", "30.00", "H-3", "2026-02-06"))
    await post(ledger, "/v1/invoices/H-3/write-off", {"reason": "insolvent"})

    events = await ledger.events()
    items = {i["invoice_id"]: i for i in await export(ledger, "invoices") if i["customer_id"] == "C-HIST"}
    assert set(items) == {"H-1", "H-2", "H-3"}
    for item in items.values():  # exactly the JSON the response model writes
        assert ExportInvoice.model_validate(item).model_dump(mode="json") == item

    h1 = about(events, "H-1")
    (applied_1,) = [e for e in only(h1, PaymentApplied) if e.data.payment_id == "P-1"]
    (reversed_2,) = only(h1, PaymentReversed)
    (credited,) = only(h1, CreditNoteApplied)
    (opened,) = only(h1, DisputeOpened)
    (resolved,) = only(h1, DisputeResolved)
    assert items["H-1"]["payments"] == [
        {"payment_id": "P-1", "received_on": "2026-02-01", "amount": str(allocation(applied_1.data, "H-1").amount),
         "reversed_at": None},
        {"payment_id": "P-2", "received_on": "2026-02-03", "amount": str(allocation(reversed_2.data, "H-1").amount),
         "reversed_at": reversed_2.occurred_at.isoformat().replace("+00:00", "Z")},
    ]  # fmt: skip
    assert items["H-1"]["credits"] == [
        {"credit_note_id": "CN-1", "issued_on": "2026-02-10", "amount": str(allocation(credited.data, "H-1").amount)}
    ]
    exported = ExportInvoice.model_validate(items["H-1"])
    assert [(d.opened_at, d.resolved_at) for d in exported.disputes] == [(opened.occurred_at, resolved.occurred_at)]
    assert exported.payments[1].reversed_at == reversed_2.occurred_at
    assert (exported.balance, exported.status, exported.disputed, exported.closed) == ("60.00", "open", False, None)
    assert exported.version == resolved.data.invoice_version

    for invoice_id, status, paid in (("H-2", "void", "15.00"), ("H-3", "written_off", "30.00")):
        history = about(events, invoice_id)
        (close,) = only(history, InvoiceVoided)
        assert history[-1] is close and close.data.status == status
        seen_before = balance_after(history[-2].data, invoice_id)
        got = ExportInvoice.model_validate(items[invoice_id])
        assert got.closed is not None
        assert (got.closed.status, got.closed.closed_at, got.closed.amount) == (
            status, close.occurred_at, str(seen_before)
        )  # fmt: skip
        assert [(p.payment_id, p.amount, p.reversed_at) for p in got.payments] == [
            ("P-3" if invoice_id == "H-2" else "P-4", paid, None)
        ], "the payment the events applied stays on the invoice's history (a void's release emits nothing)"
        assert (got.status, got.balance, got.version) == (status, "0.00", close.data.version)

    # What the export accounts for adds up: nothing left for a consumer to call "settled before the platform".
    for got in map(ExportInvoice.model_validate, items.values()):
        standing = sum(Decimal(p.amount) for p in got.payments if p.reversed_at is None)
        credited_total = sum(Decimal(c.amount) for c in got.credits)
        closed = Decimal(got.closed.amount) if got.closed else Decimal(0)
        assert Decimal(got.total) - Decimal(got.balance) - standing - credited_total - closed == 0, got


async def test_the_customer_export_says_who_was_erased(ledger: LedgerHarness) -> None:
    await post(ledger, "/v1/customers", {"id": "C-ERASE", "name": "Jane Roe", "segment": "smb"})
    await post(ledger, "/v1/customers", {"id": "C-KEEP", "name": "Globex Corp"})
    CLOCK.advance(timedelta(minutes=1))
    async with ledger.client("acme-admin-key") as admin:
        assert (await admin.delete("/v1/customers/C-ERASE/personal-data")).status_code == 202
    customers = {c["customer_id"]: c for c in await export(ledger, "customers", limit=1)}
    for item in customers.values():
        assert ExportCustomer.model_validate(item).model_dump(mode="json") == item
    assert customers["C-KEEP"] == {"customer_id": "C-KEEP", "name": "Globex Corp", "segment": None, "erased": False}
    gone = customers["C-ERASE"]
    assert (gone["segment"], gone["erased"]) == ("smb", True) and gone["name"].startswith("erased-")


async def test_a_walk_while_invoices_change_serves_each_once(ledger: LedgerHarness) -> None:
    await post(ledger, "/v1/customers", {"id": "C-WALK", "name": "Walkers Ltd"})
    before = [f"W-{n:02d}" for n in range(0, 20, 2)]
    for invoice_id in before:
        await post(ledger, "/v1/invoices", invoice(invoice_id, "C-WALK", "10.00"))
    existing = {i["invoice_id"] for i in await export(ledger, "invoices")}

    async def write_between(page: int) -> None:
        # New invoices sorting before, between and after the pages, and a payment changing one already served.
        for invoice_id in (f"A-{page}", f"W-{2 * page + 1:02d}", f"Z-{page}"):
            await post(ledger, "/v1/invoices", invoice(invoice_id, "C-WALK", "10.00"))
        await post(ledger, "/v1/payments", payment(f"PW-{page}", "C-WALK", "1.00", "W-00", "2026-02-01"))

    pages = await walk_pages(
        lambda path, **kw: ledger.get(path, **kw), "/v1/exports/invoices", limit=3, between=write_between
    )
    served = [i["invoice_id"] for page in pages for i in page]
    assert len(served) == len(set(served)), "nothing served twice"
    assert existing <= set(served), "nothing that existed when the walk began is missed"


async def test_a_bad_cursor_or_limit_is_a_422_naming_it(ledger: LedgerHarness) -> None:
    # Two of each, whatever the other tests of the module wrote before: each list then has a next page.
    for n in (1, 2):
        await post(ledger, "/v1/customers", {"id": f"C-CURSOR-{n}", "name": "Cursor Ltd"})
        await post(ledger, "/v1/invoices", invoice(f"CUR-{n}", f"C-CURSOR-{n}", "10.00"))
    other_list = (await ledger.get("/v1/invoices", params={"limit": 1})).json()["next_cursor"]
    customers_export = (await ledger.get("/v1/exports/customers", params={"limit": 1})).json()["next_cursor"]
    assert other_list and customers_export
    for path in ("/v1/exports/invoices", "/v1/exports/customers"):
        for limit in (0, 5001, "many"):
            refused = await ledger.get(path, params={"limit": limit})
            assert refused.status_code == 422 and problem_fields(refused.json()) == ["query.limit"], refused.text
            assert refused.headers["content-type"] == "application/problem+json"
        assert (await ledger.get(path, params={"limit": 5000})).status_code == 200
        forged = json.dumps([f"ledger.export.{path.rsplit('/', 1)[1]}", [["s", "INV\u0000"]]]).encode()
        for cursor in (other_list, "bm90IGEgY3Vyc29y", "%%%", base64.urlsafe_b64encode(forged).decode()):
            refused = await ledger.get(path, params={"cursor": cursor})
            assert refused.status_code == 422 and problem_fields(refused.json()) == ["query.cursor"], refused.text
    refused = await ledger.get("/v1/exports/invoices", params={"cursor": customers_export})
    assert problem_fields(refused.json()) == ["query.cursor"], "a customers cursor is not an invoices cursor"


async def test_another_tenants_ledger_never_appears_and_no_key_is_401(ledger: LedgerHarness) -> None:
    await post(ledger, "/v1/customers", {"id": "C-GLOBEX", "name": "Globex"}, key="globex-api-key")
    await post(ledger, "/v1/invoices", invoice("G-1", "C-GLOBEX", "70.00"), key="globex-api-key")
    await post(ledger, "/v1/customers", {"id": "C-ACME", "name": "Acme's own"})
    await post(ledger, "/v1/invoices", invoice("A-ONLY", "C-ACME", "5.00"))
    assert [i["invoice_id"] for i in await export(ledger, "invoices", key="globex-api-key")] == ["G-1"]
    assert [c["customer_id"] for c in await export(ledger, "customers", key="globex-admin-key")] == ["C-GLOBEX"]
    acme = await export(ledger, "invoices")
    assert "A-ONLY" in {i["invoice_id"] for i in acme} and "G-1" not in {i["invoice_id"] for i in acme}
    assert "C-GLOBEX" not in {c["customer_id"] for c in await export(ledger, "customers")}
    for path in ("/v1/exports/invoices", "/v1/exports/customers"):
        for key in (None, "not-a-key"):
            answer = await ledger.get(path, key=key)
            assert answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"
