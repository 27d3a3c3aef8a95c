"""REST API v1 writes on the real stack: upserts, events only on real change, ledger rules, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from ledger_sync.testing import LedgerHarness

CUSTOMER = {"id": "C-1", "name": "Initech GmbH", "email": "ap@initech.example", "time_zone": "Europe/Berlin"}


def invoice(**over: Any) -> dict[str, Any]:
    body = {
        "id": "INV-1",
        "customer_id": "C-1",
        "number": "2026-0001",
        "currency": "EUR",
        "total": "100.00",
        "issue_date": "2026-03-01",
        "due_date": "2026-03-31",
        "terms": "net30",
    }
    return {**body, **over}


def payment(**over: Any) -> dict[str, Any]:
    body = {
        "id": "PAY-1",
        "customer_id": "C-1",
        "currency": "EUR",
        "amount": "60.00",
        "received_on": "2026-03-10",
        "allocations": [{"invoice_id": "INV-1", "amount": "60.00"}],
    }
    return {**body, **over}


async def seed(h: LedgerHarness, *invoices: dict[str, Any]) -> None:
    assert (await h.post("/v1/customers", CUSTOMER)).status_code == 201
    for inv in invoices or (invoice(),):
        r = await h.post("/v1/invoices", inv)
        assert r.status_code == 201, r.text


async def test_repeating_an_upsert_changes_nothing_and_emits_nothing(harness: LedgerHarness) -> None:
    await seed(harness)
    again = await harness.post("/v1/invoices", invoice())
    assert again.status_code == 200
    assert again.json() == {"id": "INV-1", "created": False, "changed": False, "events": []}
    same_customer = await harness.post("/v1/customers", CUSTOMER)
    assert same_customer.json()["changed"] is False
    assert await harness.event_types() == ["customer.upserted", "invoice.created"]


async def test_changing_an_invoice_emits_invoice_updated_with_each_change(harness: LedgerHarness) -> None:
    await seed(harness)
    r = await harness.post("/v1/invoices", invoice(total="120.00", due_date="2026-04-15"))
    assert r.status_code == 200 and r.json()["events"] == ["invoice.updated"]
    updated = (await harness.events())[-1]
    assert updated.type == "invoice.updated"
    changes = {c.field: (c.old, c.new) for c in updated.data.changes}
    assert changes == {
        "total": ("100.00", "120.00"),
        "due_date": ("2026-03-31", "2026-04-15"),
        "balance": ("100.00", "120.00"),
    }
    assert str(updated.data.balance) == "120.00"


async def test_partial_payment_then_overpayment_keeps_unapplied_credit(harness: LedgerHarness) -> None:
    await seed(harness)
    first = await harness.post("/v1/payments", payment())
    assert first.status_code == 201, first.text
    second = await harness.post(
        "/v1/payments",
        payment(id="PAY-2", amount="50.00", allocations=[{"invoice_id": "INV-1", "amount": "40.00"}]),
    )
    assert second.status_code == 201, second.text
    inv = (await harness.get("/v1/invoices/INV-1")).json()
    assert inv["balance"] == "0.00" and inv["status"] == "paid"
    pay2 = (await harness.get("/v1/payments/PAY-2")).json()
    assert pay2["unapplied"] == "10.00"
    applied = [e for e in await harness.events() if e.type == "payment.applied"]
    assert [
        (a.invoice_id, str(a.invoice_balance_after), a.invoice_status_after) for a in applied[0].data.allocations
    ] == [("INV-1", "40.00", "open")]
    assert [
        (str(a.amount), str(a.invoice_balance_after), a.invoice_status_after) for a in applied[1].data.allocations
    ] == [("40.00", "0.00", "paid")]
    assert str(applied[1].data.unapplied) == "10.00"


async def test_reversing_a_payment_reopens_the_invoice(harness: LedgerHarness) -> None:
    await seed(harness)
    await harness.post(
        "/v1/payments", payment(amount="100.00", allocations=[{"invoice_id": "INV-1", "amount": "100.00"}])
    )
    r = await harness.post("/v1/payments/PAY-1/reverse", {"reason": "cheque bounced"})
    assert r.status_code == 200 and r.json()["events"] == ["payment.reversed"]
    again = await harness.post("/v1/payments/PAY-1/reverse", {"reason": "cheque bounced"})
    assert again.json()["changed"] is False
    inv = (await harness.get("/v1/invoices/INV-1")).json()
    assert (inv["balance"], inv["status"], inv["payments"]) == ("100.00", "open", [])
    reversed_ = [e for e in await harness.events() if e.type == "payment.reversed"]
    assert len(reversed_) == 1
    assert [
        (a.invoice_id, str(a.invoice_balance_after), a.invoice_status_after) for a in reversed_[0].data.allocations
    ] == [("INV-1", "100.00", "open")]


async def test_credit_note_reduces_the_balance_and_emits_credit_note_applied(harness: LedgerHarness) -> None:
    await seed(harness)
    r = await harness.post(
        "/v1/credit-notes",
        {
            "id": "CN-1",
            "customer_id": "C-1",
            "currency": "EUR",
            "total": "30.00",
            "issued_on": "2026-03-05",
            "allocations": [{"invoice_id": "INV-1", "amount": "25.00"}],
        },
    )
    assert r.status_code == 201, r.text
    inv = (await harness.get("/v1/invoices/INV-1")).json()
    assert inv["balance"] == "75.00" and inv["credits"] == [{"credit_note_id": "CN-1", "amount": "25.00"}]
    assert (await harness.get("/v1/credit-notes/CN-1")).json()["remaining"] == "5.00"
    ev = (await harness.events())[-1]
    assert ev.type == "credit_note.applied"
    assert [(a.invoice_id, str(a.invoice_balance_after)) for a in ev.data.allocations] == [("INV-1", "75.00")]


async def test_void_releases_payments_as_unapplied_credit_and_emits_invoice_voided(harness: LedgerHarness) -> None:
    await seed(harness)
    await harness.post("/v1/payments", payment())
    r = await harness.post("/v1/invoices/INV-1/void", {"reason": "issued in error"})
    assert r.status_code == 200 and r.json()["events"] == ["invoice.voided"]
    inv = (await harness.get("/v1/invoices/INV-1")).json()
    assert (inv["status"], inv["balance"], inv["cancelled"]) == ("void", "0.00", "100.00")
    assert (await harness.get("/v1/payments/PAY-1")).json()["unapplied"] == "60.00"
    voided = (await harness.events())[-1]
    assert (voided.type, voided.data.status, voided.data.reason) == ("invoice.voided", "void", "issued in error")
    changed = await harness.post("/v1/invoices", invoice(total="5.00"))
    assert changed.status_code == 422 and changed.json()["errors"][0]["field"] == "status"


async def test_write_off_emits_invoice_voided_with_status_written_off(harness: LedgerHarness) -> None:
    await seed(harness)
    await harness.post("/v1/payments", payment())
    r = await harness.post("/v1/invoices/INV-1/write-off", {"reason": "uncollectible"})
    assert r.status_code == 200, r.text
    inv = (await harness.get("/v1/invoices/INV-1")).json()
    assert (inv["status"], inv["balance"], inv["cancelled"]) == ("written_off", "0.00", "40.00")
    ev = (await harness.events())[-1]
    assert (ev.type, ev.data.status, str(ev.data.balance)) == ("invoice.voided", "written_off", "0.00")


async def test_dispute_open_and_resolve_emit_once_each(harness: LedgerHarness) -> None:
    await seed(harness)
    assert (await harness.post("/v1/invoices/INV-1/dispute", {"reason": "goods damaged"})).json()["events"] == [
        "dispute.opened"
    ]
    assert (await harness.post("/v1/invoices/INV-1/dispute", {"reason": "goods damaged"})).json()["changed"] is False
    inv = (await harness.get("/v1/invoices/INV-1")).json()
    assert inv["disputed"] is True and inv["dispute_reason"] == "goods damaged"
    resolved = await harness.post("/v1/invoices/INV-1/dispute/resolve", {"resolution": "replacement shipped"})
    assert resolved.json()["events"] == ["dispute.resolved"]
    assert (await harness.event_types())[-2:] == ["dispute.opened", "dispute.resolved"]


async def test_void_of_an_unknown_invoice_is_404(harness: LedgerHarness) -> None:
    r = await harness.post("/v1/invoices/NOPE/void", {})
    assert r.status_code == 404


# ------------------------------------------------------------------------------------------ bad input


async def test_malformed_json_is_400(harness: LedgerHarness) -> None:
    async with harness.client() as api:
        r = await api.post("/v1/invoices", content=b'{"id": "INV-1",', headers={"content-type": "application/json"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (invoice(currency="EUX"), "currency", "unknown currency"),
        (invoice(total="-5.00"), "total", "negative"),
        (invoice(total="10.001"), "total", "decimals"),
        (invoice(total=10.5), "total", "float"),
        (invoice(due_date="2026-02-01"), "due_date", "before issue_date"),
        (invoice(customer_id="C-404"), "customer_id", "unknown customer"),
    ],
)
async def test_a_wrong_invoice_field_is_422_naming_it(
    harness: LedgerHarness, body: dict[str, Any], field: str, words: str
) -> None:
    await seed(harness)
    r = await harness.post("/v1/invoices", {**body, "id": "INV-BAD"})
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert any(d["field"] == field and words in d["reason"] for d in errors), errors
    assert (await harness.get("/v1/invoices/INV-BAD")).status_code == 404


@pytest.mark.parametrize(
    ("allocations", "field", "words"),
    [
        ([{"invoice_id": "INV-404", "amount": "10.00"}], "allocations[0].invoice_id", "unknown invoice"),
        ([{"invoice_id": "INV-1", "amount": "100.01"}], "allocations[0].amount", "open balance"),
        ([{"invoice_id": "INV-USD", "amount": "10.00"}], "allocations[0].invoice_id", "currency mismatch"),
        (
            [{"invoice_id": "INV-1", "amount": "90.00"}, {"invoice_id": "INV-2", "amount": "90.00"}],
            "allocations",
            "more than the payment",
        ),
    ],
)
async def test_a_wrong_allocation_is_422_and_nothing_is_written(
    harness: LedgerHarness, allocations: list[dict[str, str]], field: str, words: str
) -> None:
    await seed(
        harness, invoice(), invoice(id="INV-2", number="2026-0002"), invoice(id="INV-USD", number="U1", currency="USD")
    )
    before = await harness.event_types()
    r = await harness.post("/v1/payments", payment(amount="150.00", allocations=allocations))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field and words in r.json()["errors"][0]["reason"]
    assert (await harness.get("/v1/payments/PAY-1")).status_code == 404
    inv = (await harness.get("/v1/invoices/INV-1")).json()
    assert inv["balance"] == "100.00" and inv["payments"] == []
    assert await harness.event_types() == before


async def test_total_below_what_is_paid_is_422(harness: LedgerHarness) -> None:
    await seed(harness)
    await harness.post("/v1/payments", payment())
    r = await harness.post("/v1/invoices", invoice(total="50.00"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "total"


@pytest.mark.parametrize(
    ("currency", "total"), [("EUR", "4820.00"), ("JPY", "120000"), ("KWD", "12.345"), ("EUR", "0.00")]
)
async def test_invoice_created_built_by_postgresql_is_the_codecs_envelope(
    harness: LedgerHarness, currency: str, total: str
) -> None:
    """New invoices' events are written by SQL (adapters/bulk_invoices.py): they must be byte-for-byte
    what the codec would write for the same envelope, whatever the currency's minor units."""
    import json

    from dunning_events.codec import attributes, encode

    await seed(harness, invoice(currency=currency, total=total, terms=None))
    created = next(e for e in await harness.events() if e.type == "invoice.created")
    async with harness.service.runtime.sessions() as s:
        from sqlalchemy import select

        from ledger_sync.adapters import orm

        o = orm.outbox.c
        row = (
            await s.execute(
                select(o.payload, o.source, o.occurred_at, o.subject, o.schema_version, o.tenant_id).where(
                    o.event_type == "invoice.created"
                )
            )
        ).one()
    assert json.loads(row.payload) == json.loads(encode(created)[1])
    a = attributes(created)  # and the CloudEvents attributes in the row's columns, as the codec writes them
    assert (row.source, row.occurred_at, row.subject, str(row.schema_version), row.tenant_id) == (
        a["source"],
        a["occurred_at"],
        a["subject"],
        a["schema_version"],
        a["tenant_id"],
    )
    assert str(created.data.total) == total and str(created.data.balance) == total
    assert created.data.status == ("paid" if total == "0.00" else "open")
    assert created.data.terms is None and created.subject == "INV-1" and created.customer_id == "C-1"
