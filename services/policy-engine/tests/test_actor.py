"""Who acted (`Dunning-Actor`, dunning_kit.actor): a block set from the workspace is on the case's timeline with
the person's name and in the audit log; a policy version records its author; a refused actor writes nothing; a
call with an API key alone is as before. One engine for the whole story (each start costs seconds)."""

from __future__ import annotations

from datetime import timedelta

from dunning_events.acting import EventActor, person_acting
from dunning_events.events import DisputeOpened
from dunning_kit.actor import HEADER
from dunning_kit.testing import COLIN, MONA, acting_as

from .conftest import EngineHarness
from .test_api import POLICY_YAML
from .test_pauses import promise, start_overdue

YAML = {"content-type": "application/yaml"}


async def test_changes_made_for_a_person_name_them_and_a_refused_person_changes_nothing(engine: EngineHarness) -> None:
    await start_overdue(engine, "A")
    colin = acting_as(COLIN, engine.clock)
    async with engine.api() as api, engine.api("acme-admin-key") as admin:
        # Refused: forged, expired, another tenant's person -> 401 naming the header, no block, no audit row.
        for header in (
            acting_as(COLIN, engine.clock, key="xxsZh6V4bM1q8E0rYt3uLw7aPz2cNd9fGh5jKl0mQ4s"),
            acting_as(COLIN, engine.clock, at=engine.clock.now() - timedelta(minutes=6)),
        ):
            r = await api.put("/v1/customers/C-1/dunning-block", json={"reason": "x"}, headers=header)
            assert r.status_code == 401 and r.json()["errors"][0]["field"] == HEADER, r.text
        async with engine.api("globex-api-key") as globex:
            r = await globex.put("/v1/customers/C-1/dunning-block", json={"reason": "x"}, headers=colin)
            assert r.status_code == 401, "acme's person on globex's key"
        assert (await engine.state("A"))["paused_by"] == []
        assert (await admin.get("/v1/audit-log")).json()["items"] == []

        # For a person: the timeline and the audit name them.
        r = await api.put("/v1/customers/C-1/dunning-block", json={"reason": "CFO call"}, headers=colin)
        assert r.status_code == 200, r.text
        r = await api.put("/v1/invoices/A/dunning-block", json={"reason": "under review"}, headers=colin)
        assert r.status_code == 200, r.text
        customer_tl = (await api.get("/v1/customers/C-1/timeline", params={"limit": 500})).json()["items"]
        block = next(e for e in customer_tl if e["invoice_id"] is None and "CFO call" in e["reason"])
        assert block["detail"]["actor"] == {"sub": "colin", "name": "Colin Collector"}
        invoice_block = [e for e in await engine.timeline("A") if "invoice dunning block set" in (e["reason"] or "")]
        assert invoice_block and invoice_block[-1]["detail"]["actor"]["name"] == "Colin Collector"

        # A policy published by a manager records them; one published by a key alone records nobody.
        r = await admin.post("/v1/policies", content=POLICY_YAML, headers={**YAML, **acting_as(MONA, engine.clock)})
        assert r.status_code == 201, r.text
        r = await admin.put("/v1/policies/smb", content=POLICY_YAML, headers=YAML)
        assert r.status_code == 200, r.text
        versions = (await admin.get("/v1/policies/smb/versions")).json()["items"]
        assert [v["author"] for v in versions] == [{"sub": "mona", "name": "Mona Manager"}, None]
        assert (await admin.get("/v1/policies/smb/versions/1")).json()["author"]["name"] == "Mona Manager"

        # Without a person: as before, nobody on the timeline, nothing in the audit.
        assert (await api.delete("/v1/invoices/A/dunning-block")).status_code == 200
        cleared = [e for e in await engine.timeline("A") if "invoice dunning block cleared" in (e["reason"] or "")]
        assert cleared and "actor" not in cleared[-1]["detail"]

        audit = (await admin.get("/v1/audit-log")).json()["items"]
        assert [(e["method"], e["route"], e["actor"]["name"], e["outcome"]) for e in audit] == [
            ("POST", "/v1/policies", "Mona Manager", "applied"),
            ("PUT", "/v1/invoices/{invoice_id}/dunning-block", "Colin Collector", "applied"),
            ("PUT", "/v1/customers/{customer_id}/dunning-block", "Colin Collector", "applied"),
        ]
        assert audit[1]["targets"] == {"invoice_id": "A"}

    # An event a person's action made in another service (a promise recorded in the workspace travels with
    # ce_actor* headers): the entry it causes names them; a fact from a machine (an ERP's dispute) names nobody.
    with person_acting(EventActor(sub="colin", name="Colin Collector")):
        await engine.publish(promise("P-1", "A"))
    await engine.publish(DisputeOpened(customer_id="C-1", invoice_id="A", reason="wrong quantity"))
    await engine.quiet()
    entries = await engine.timeline("A")
    by_promise = [e for e in entries if "promise to pay" in (e["reason"] or "")]
    assert by_promise and by_promise[-1]["detail"]["actor"] == {"sub": "colin", "name": "Colin Collector"}, entries
    by_erp = [e for e in entries if "dispute opened" in (e["reason"] or "")]
    assert by_erp and "actor" not in by_erp[-1]["detail"], by_erp
