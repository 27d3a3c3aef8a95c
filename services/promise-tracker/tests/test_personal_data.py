"""Personal data in the promise tracker (GDPR Art. 15 and 17): the export shows the customer, its promises and
plans with their notes and who recorded them; customer.erased deletes the notes and typed reasons, keeps the
money facts, and no new promise is taken afterwards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from dunning_events.events import CustomerErased
from dunning_kit.clock import SimulatedClock
from dunning_kit.personal_data import tables_mentioning
from dunning_kit.testing import RunningService
from promise_tracker.adapters import orm

pytestmark = pytest.mark.asyncio

NAME = "Anna Schmidt Feinkost"
PROMISE_NOTE = "Anna Schmidt on the phone: pays Friday after her surgery"
PLAN_NOTE = "Anna asked for instalments, husband lost his job"
CANCEL_REASON = "Anna Schmidt disputes the delivery"
SECRETS = (NAME, PROMISE_NOTE, PLAN_NOTE, CANCEL_REASON, "Anna")


async def _export(tracker: RunningService, key: str = "acme-admin-key") -> Any:
    async with tracker.client(key) as api:
        return await api.get("/v1/customers/C-1/personal-data")


async def _mentions(tracker: RunningService, needle: str) -> dict[str, int]:
    async with tracker.runtime.sessions() as session:
        return await tables_mentioning(session, orm.metadata, needle)


async def _promised(tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock) -> None:
    await ledger.customer("C-1", "Europe/Berlin", name=NAME)
    for invoice_id in ("INV-1", "INV-2", "INV-3"):
        await ledger.invoice(invoice_id, "C-1", "300.00")
    await quiet()
    day = (clock.now().date() + timedelta(days=5)).isoformat()
    promise = {"customer_id": "C-1", "currency": "EUR", "promised_date": day, "recorded_by": "collector"}
    async with tracker.client() as api:
        kept = await api.post("/v1/promises", json={**promise, "invoice_ids": ["INV-1"], "amount": "300.00",
                                                    "note": PROMISE_NOTE})  # fmt: skip
        assert kept.status_code == 201, kept.text
        dropped = await api.post("/v1/promises", json={**promise, "invoice_ids": ["INV-3"], "amount": "300.00"})
        cancel = await api.post(f"/v1/promises/{dropped.json()['id']}/cancel", json={"reason": CANCEL_REASON})
        assert cancel.status_code == 200, cancel.text
        plan = await api.post(
            "/v1/plans",
            json={"customer_id": "C-1", "invoice_ids": ["INV-2"], "currency": "EUR", "instalment_count": 2,
                  "first_due_date": day, "interval": "monthly", "recorded_by": "customer", "note": PLAN_NOTE},
        )  # fmt: skip
        assert plan.status_code == 201, plan.text
    await ledger.payment("PAY-1", "C-1", [("INV-1", "100.00")])
    await quiet()


async def test_the_export_shows_promises_plans_notes_and_who_recorded_them(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await _promised(tracker, ledger, quiet, clock)
    r = await _export(tracker)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["service"], doc["customer_id"], doc["erased"]) == ("promise-tracker", "C-1", False)
    data = doc["data"]
    assert set(data) == {"customer", "promises", "plans", "payments_matched", "invoices"}
    assert data["customer"][0]["name"] == NAME
    notes = {(p["recorded_by"], p["note"], p["status"], p["reason"]) for p in data["promises"] if not p["plan_id"]}
    assert notes == {("collector", PROMISE_NOTE, "active", None), ("collector", None, "cancelled", CANCEL_REASON)}
    assert [(p["recorded_by"], p["note"], p["instalment_count"]) for p in data["plans"]] == [("customer", PLAN_NOTE, 2)]
    assert [(m["source_id"], m["amount_minor"]) for m in data["payments_matched"]] == [("PAY-1", 10000)]
    assert {i["invoice_id"] for i in data["invoices"]} == {"INV-1", "INV-2", "INV-3"}
    assert (await _export(tracker, "acme-api-key")).status_code == 403
    async with tracker.client("globex-admin-key") as api:
        other = (await api.get("/v1/customers/C-1/personal-data")).json()
    assert other["erased"] is False and all(v == [] for v in other["data"].values())


async def test_customer_erased_deletes_notes_and_names_keeps_the_money_and_takes_no_new_promise(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await _promised(tracker, ledger, quiet, clock)
    for needle in SECRETS:
        assert await _mentions(tracker, needle), needle
    before = (await _export(tracker)).json()["data"]

    erasure = await ledger.send(CustomerErased(customer_id="C-1", erased_at=clock.now(), pseudonym="erased-3f9a1c"))
    await quiet()

    for needle in SECRETS:
        assert await _mentions(tracker, needle) == {}, needle
    doc = (await _export(tracker)).json()
    assert doc["erased"] is True and doc["data"]["customer"][0]["name"] == "erased-3f9a1c"
    assert not any(needle in str(doc) for needle in SECRETS)

    def money(data: dict[str, Any]) -> list[Any]:
        return sorted(
            (p["promise_id"], p["amount_minor"], p["received_minor"], p["status"], p["recorded_by"], p["deadline"])
            for p in data["promises"]
        )

    assert money(doc["data"]) == money(before)
    assert doc["data"]["payments_matched"] == before["payments_matched"]
    assert all(p["note"] is None for p in doc["data"]["promises"] + doc["data"]["plans"])
    assert {p["reason"] for p in doc["data"]["promises"] if p["status"] == "cancelled"} == {"[erased]"}

    # Redelivered, then a later sync of the customer (the tombstoned ledger's pseudonym, or a stale name):
    # nothing comes back.
    headers, value = ledger.last_raw
    await ledger.producer.send_and_wait(erasure.data.topic, value, key=b"acme:C-1", headers=headers)
    await ledger.customer("C-1", name=NAME)
    await quiet()
    assert (await _export(tracker)).json() == doc

    # Money is still matched to the running promise.
    await ledger.payment("PAY-2", "C-1", [("INV-1", "200.00")])
    await quiet()
    kept = [p for p in (await _export(tracker)).json()["data"]["promises"] if p["received_minor"] == 30000]
    assert [p["status"] for p in kept] == ["kept"]

    # No new promise or plan for an erased customer (an old self-service link, a collector's form).
    async with tracker.client() as api:
        refused = await api.post(
            "/v1/promises",
            json={"customer_id": "C-1", "invoice_ids": ["INV-3"], "amount": "300.00", "currency": "EUR",
                  "promised_date": (clock.now().date() + timedelta(days=3)).isoformat(), "recorded_by": "collector"},
        )  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert [d["field"] for d in refused.json()["errors"]] == ["customer_id"]
