"""Who acted (`Dunning-Actor`, dunning_kit.actor): a ledger write made for a person lands in the audit log with
their name in the write's own transaction; a retry replayed by its Idempotency-Key is not a second change; a
refused actor writes nothing; a refusal of the input is recorded as refused."""

from __future__ import annotations

from datetime import timedelta

from dunning_kit.actor import HEADER
from dunning_kit.testing import COLIN, acting_as
from ledger_sync.testing import LedgerHarness

from .test_api_keys_and_reads import CUSTOMER, invoice


async def test_ledger_writes_for_a_person_are_audited_with_the_write_and_refused_actors_write_nothing(
    harness: LedgerHarness,
) -> None:
    clock = harness.service.runtime.clock
    stale = acting_as(COLIN, clock, at=clock.now() - timedelta(minutes=10))
    refused = await harness.post("/v1/customers", CUSTOMER, headers=stale)
    assert refused.status_code == 401 and refused.json()["errors"][0]["field"] == HEADER
    assert (await harness.get("/v1/customers/C-1")).status_code == 404, "nothing was written"

    colin = {**acting_as(COLIN, clock), "Idempotency-Key": "k-colin-1"}
    assert (await harness.post("/v1/customers", CUSTOMER, headers=colin)).status_code == 201
    replayed = await harness.post("/v1/customers", CUSTOMER, headers=colin)
    assert replayed.headers.get("idempotent-replayed") == "true"
    assert (await harness.post("/v1/invoices", invoice(1), headers=acting_as(COLIN, clock))).status_code == 201
    dispute = await harness.post(
        "/v1/invoices/INV-001/dispute", {"reason": "wrong price"}, headers=acting_as(COLIN, clock)
    )
    assert dispute.status_code == 200, dispute.text
    bad = await harness.post("/v1/invoices", invoice(2, currency="EURO"), headers=acting_as(COLIN, clock))
    assert bad.status_code == 422
    assert (await harness.post("/v1/invoices", invoice(3))).status_code == 201, "a key alone: as before"

    audit = (await harness.get("/v1/audit-log", key="acme-admin-key")).json()["items"]
    assert [(e["method"], e["route"], e["targets"], e["outcome"], e["status"]) for e in audit] == [
        ("POST", "/v1/invoices", {}, "refused", 422),
        ("POST", "/v1/invoices/{invoice_id}/dispute", {"invoice_id": "INV-001"}, "applied", None),
        ("POST", "/v1/invoices", {}, "applied", None),
        ("POST", "/v1/customers", {}, "applied", None),
    ]
    assert {e["actor"]["name"] for e in audit} == {"Colin Collector"}
