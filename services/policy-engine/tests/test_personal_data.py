"""Personal data (GDPR Art. 15 and 17): the export shows what the engine holds about a customer; customer.erased
cuts the personal text, stops dunning for good with the reason on the timeline, and nothing restarts it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from dunning_events.events import CustomerErased, DisputeOpened, InvoiceUpdated
from dunning_events.kafka import send_event
from dunning_kit.personal_data import tables_mentioning
from policy_engine.adapters import orm
from policy_engine.domain.cases import ERASED_STOP, redact_free_text

from .conftest import EngineHarness, customer, invoice

DISPUTE_TEXT = "Anna Schmidt says the pallets arrived crushed"
BLOCK_TEXT = "Anna Schmidt is in hospital until May"
TAG = "contact-anna-schmidt"
CALL_NOTE = "left a message for Anna Schmidt on her mobile"
CASE_NOTE = "Anna Schmidt's husband says she pays after the surgery"
SECRETS = (DISPUTE_TEXT, BLOCK_TEXT, TAG, "Anna Schmidt", CALL_NOTE, CASE_NOTE)


async def _export(engine: EngineHarness, key: str = "acme-admin-key") -> Any:
    async with engine.api(key) as api:
        return await api.get("/v1/customers/C-1/personal-data")


async def _mentions(engine: EngineHarness, needle: str) -> dict[str, int]:
    async with engine.svc.runtime.sessions() as session:
        return await tables_mentioning(session, orm.metadata, needle)


async def _customer_timeline(engine: EngineHarness) -> list[dict[str, Any]]:
    async with engine.api() as api:
        r = await api.get("/v1/customers/C-1/timeline", params={"limit": 500})
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]


def _erased(engine: EngineHarness) -> CustomerErased:
    return CustomerErased(customer_id="C-1", erased_at=engine.clock.now(), pseudonym="erased-3f9a1c")


async def _holding_personal_text(engine: EngineHarness) -> None:
    due = engine.today + timedelta(days=10)
    await engine.publish(customer(tags=[TAG]), invoice("INV-1", due=due), invoice("INV-2", due=due))
    await engine.publish(DisputeOpened(customer_id="C-1", invoice_id="INV-2", reason=DISPUTE_TEXT))
    await engine.quiet()
    async with engine.api() as api:
        r = await api.put("/v1/invoices/INV-1/dunning-block", json={"reason": BLOCK_TEXT})
        assert r.status_code == 200, r.text
        r = await api.delete("/v1/invoices/INV-1/dunning-block")
        assert r.status_code == 200, r.text
        r = await api.put("/v1/customers/C-1/dunning-block", json={"reason": BLOCK_TEXT})
        assert r.status_code == 200, r.text
        r = await api.delete("/v1/customers/C-1/dunning-block")
        assert r.status_code == 200, r.text
        r = await api.post("/v1/customers/C-1/calls", json={"outcome": "voicemail", "note": CALL_NOTE})
        assert r.status_code == 201, r.text
        for where in (None, ["INV-1"]):  # a note on the customer's timeline, and one on an invoice's
            r = await api.post("/v1/customers/C-1/notes", json={"text": CASE_NOTE, "invoice_ids": where})
            assert r.status_code == 201, r.text


async def test_the_export_shows_what_the_engine_holds_about_the_customer(engine: EngineHarness) -> None:
    await _holding_personal_text(engine)
    async with engine.api() as api:
        r = await api.put("/v1/invoices/INV-1/dunning-block", json={"reason": "waiting for Anna Schmidt"})
        assert r.status_code == 200, r.text

    r = await _export(engine)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["service"], doc["customer_id"], doc["erased"]) == ("policy-engine", "C-1", False)
    assert set(doc["data"]) == {"customer", "cases", "timeline", "contact_attempts", "calls", "blocks"}
    [call] = doc["data"]["calls"]
    assert (call["outcome"], call["invoice_ids"], call["note"]) == ("voicemail", ["INV-1", "INV-2"], CALL_NOTE)
    assert doc["data"]["customer"][0]["tags"] == [TAG]
    assert {c["invoice_id"] for c in doc["data"]["cases"]} == {"INV-1", "INV-2"}
    reasons = " | ".join(e["reason"] for e in doc["data"]["timeline"])
    assert DISPUTE_TEXT in reasons and BLOCK_TEXT in reasons
    assert doc["data"]["blocks"] == [{"scope": "invoice", "invoice_id": "INV-1", "reason": "waiting for Anna Schmidt"}]

    assert (await _export(engine, "acme-api-key")).status_code == 403  # everything about a person: admin only
    assert (await _export(engine, None)).status_code == 401
    async with engine.api("globex-admin-key") as api:
        other = (await api.get("/v1/customers/C-1/personal-data")).json()
    assert other["erased"] is False and all(v == [] for v in other["data"].values())


async def test_customer_erased_cuts_the_personal_text_and_stops_dunning_for_good(engine: EngineHarness) -> None:
    await _holding_personal_text(engine)
    for needle in SECRETS:
        assert await _mentions(engine, needle), needle
    pending = {s["invoice_id"]: s for s in (await _export(engine)).json()["data"]["cases"]}
    assert pending["INV-1"]["next_step"] is not None

    (erasure,) = await engine.publish(_erased(engine))
    await engine.quiet()

    for needle in SECRETS:
        assert await _mentions(engine, needle) == {}, needle
    for iid in ("INV-1", "INV-2"):
        state = await engine.state(iid)
        assert (state["status"], state["closed_reason"], state["next_at"]) == ("closed", ERASED_STOP, None)
        assert state["closure"] == "erased"
        # The money facts stay.
        assert (state["balance"], state["currency"]) == ("1000.00", "EUR")
    cancelled = [c for c in await engine.cancelled() if c.reason == ERASED_STOP]
    # Each pending step is cancelled (a paused case keeps its pending step), as when an invoice is paid.
    assert sorted(c.invoice_ids for c in cancelled) == [["INV-1"], ["INV-2"]]
    notes = await _customer_timeline(engine)
    erased_notes = [e for e in notes if e["invoice_id"] is None and e["reason"].startswith("personal data erased")]
    assert [(e["kind"], e["reason"], e["detail"]["erasure"]) for e in erased_notes] == [
        ("cancelled", "personal data erased (data subject request): dunning stopped for good", "data_subject_request")
    ]
    assert {e["invoice_id"] for e in notes if e["reason"] == ERASED_STOP} == {"INV-1", "INV-2"}
    # The decisions stay explained, the quoted free text is gone.
    assert any(e["reason"].endswith("dispute opened: [erased]") for e in notes)

    doc = (await _export(engine)).json()
    assert doc["erased"] is True
    assert doc["data"]["customer"][0]["tags"] == []
    text = str(doc)
    assert not any(needle in text for needle in SECRETS)

    # Redelivered (same event id) and erased again (a new event): nothing changes.
    before = (len(notes), len(await engine.cancelled()))
    await send_event(engine.producer, erasure)
    await engine.publish(_erased(engine))
    await engine.quiet()
    assert (len(await _customer_timeline(engine)), len(await engine.cancelled())) == before

    # The tombstoned ledger syncs the customer again (a pseudonym), an invoice reopens, a new one arrives:
    # nothing restarts dunning.
    steps_before = len(await engine.steps_due())
    await engine.publish(
        customer(time_zone="UTC", country=None),
        InvoiceUpdated(
            customer_id="C-1", invoice_id="INV-1", number="N-INV-1", currency="EUR", total=Decimal("1000.00"),
            balance=Decimal("1200.00"), issue_date=engine.today, due_date=engine.today + timedelta(days=3),
        ),
        invoice("INV-3", due=engine.today + timedelta(days=5)),
    )  # fmt: skip
    await engine.advance(days=90)
    assert len(await engine.steps_due()) == steps_before
    assert (await engine.state("INV-3"))["closed_reason"] == ERASED_STOP
    assert (await engine.state("INV-1"))["status"] == "closed"
    assert (await _export(engine)).json()["erased"] is True


def test_redaction_cuts_everything_after_a_free_text_marker() -> None:
    assert redact_free_text("paused: the invoice is disputed (dispute opened: goods damaged, ask Anna)") == (
        "paused: the invoice is disputed (dispute opened: [erased]"
    )
    assert redact_free_text("customer dunning block set: Anna is ill") == "customer dunning block set: [erased]"
    assert redact_free_text("pre_due_reminder scheduled for 2026-03-01T09:00") == (
        "pre_due_reminder scheduled for 2026-03-01T09:00"
    )
