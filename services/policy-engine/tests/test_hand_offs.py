"""Hand-offs to collections: the cases a step handed off, listed until a person completes them with an outcome."""

from __future__ import annotations

from datetime import timedelta

from dunning_kit.testing import COLIN, acting_as

from .conftest import EngineHarness, customer, invoice

QUICK = {
    "id": "quick-hand-off", "priority": 1, "hand_off_requires_reminder": False,
    "steps": [
        {"name": "due", "offset_days": 0, "channels": ["email"], "template_id": "due", "tone": "neutral"},
        {"name": "agency", "offset_days": 3, "channels": ["task"], "template_id": "agency", "tone": "final",
         "actions": ["hand_off_to_collections"]},
    ],
}  # fmt: skip


async def test_handed_off_cases_wait_for_a_person_who_completes_each_once_with_an_outcome(
    engine: EngineHarness,
) -> None:
    async with engine.api("acme-admin-key") as admin:
        assert (await admin.post("/v1/policies", json=QUICK)).status_code == 201
    due = engine.today + timedelta(days=2)
    await engine.publish(customer("C-1"), customer("C-2"), invoice("A", "C-1", due=due, amount="120.50"))
    await engine.run_until_idle("A")
    await engine.publish(invoice("B", "C-2", due=engine.today + timedelta(days=2)), invoice("X", "C-2", due=None))
    await engine.run_until_idle("B")
    assert (await engine.state("A"))["closure"] == "handed_off"

    colin = acting_as(COLIN, engine.clock)
    async with engine.api() as api:
        first = (await api.get("/v1/hand-offs", params={"limit": 1})).json()
        (a,) = first["items"]
        assert {k: a[k] for k in ("invoice_id", "customer_id", "balance", "currency", "policy_id", "step")} == {
            "invoice_id": "A", "customer_id": "C-1", "balance": "120.50", "currency": "EUR",
            "policy_id": "quick-hand-off", "step": "agency",
        }  # fmt: skip
        assert a["handed_off_at"] is not None and (a["acknowledged_at"], a["outcome"]) == (None, None)
        rest = (await api.get("/v1/hand-offs", params={"limit": 1, "cursor": first["next_cursor"]})).json()
        assert [h["invoice_id"] for h in rest["items"]] == ["B"] and rest["next_cursor"] is None

        r = await api.post("/v1/hand-offs/A/acknowledge", json={"outcome": "sent_to_agency", "note": "Agency file 77"},
                           headers=colin)  # fmt: skip
        assert r.status_code == 200, r.text
        assert (r.json()["outcome"], r.json()["acknowledged_by"]) == (
            "sent_to_agency", {"sub": "colin", "name": "Colin Collector"},
        )  # fmt: skip
        again = await api.post("/v1/hand-offs/A/acknowledge", json={"outcome": "kept_in_house"}, headers=colin)
        assert again.status_code == 409, again.text
        for invoice_id in ("X", "NOPE"):  # open, unknown
            r = await api.post(f"/v1/hand-offs/{invoice_id}/acknowledge", json={"outcome": "kept_in_house"})
            assert r.status_code == 404, r.text
        r = await api.post("/v1/hand-offs/B/acknowledge", json={"outcome": "lost_it"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "outcome", r.text

        waiting = (await api.get("/v1/hand-offs")).json()["items"]
        done = (await api.get("/v1/hand-offs", params={"acknowledged": "true"})).json()["items"]
    assert [h["invoice_id"] for h in waiting] == ["B"]
    assert [(h["invoice_id"], h["outcome"]) for h in done] == [("A", "sent_to_agency")]
    entry = (await engine.timeline("A"))[-1]
    assert (entry["kind"], entry["reason"]) == ("hand_off", "hand-off completed: sent to the collection agency by "
                                                            "Colin Collector")  # fmt: skip
    assert entry["detail"]["note"] == "Agency file 77"
    # Completing emits its event once, naming the person in the envelope (dunning_events.acting).
    await engine.quiet()  # the outbox published
    completed = await engine.events(type_="dunning.hand_off.completed")
    assert [(e.data.invoice_id, e.data.outcome, e.actor and e.actor.name) for e in completed] == [
        ("A", "sent_to_agency", "Colin Collector")
    ]
