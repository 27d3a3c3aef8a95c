"""Notes on a case: a person's free text on the customer's timeline (or its invoices'), with their name."""

from __future__ import annotations

from dunning_kit.testing import COLIN, acting_as

from .conftest import EngineHarness
from .test_pauses import start_overdue


async def test_a_note_lands_on_the_timeline_with_the_person_and_bad_input_is_refused_at_its_field(
    engine: EngineHarness,
) -> None:
    await start_overdue(engine, "A", "B")
    colin = acting_as(COLIN, engine.clock)
    async with engine.api() as api:
        r = await api.post("/v1/customers/C-1/notes", json={"text": "  Asked for a copy of the invoice.  "},
                           headers=colin)  # fmt: skip
        assert r.status_code == 201, r.text
        note = r.json()
        assert (note["text"], note["invoice_ids"], note["by"]) == (
            "Asked for a copy of the invoice.", [], {"sub": "colin", "name": "Colin Collector"},
        )  # fmt: skip
        r = await api.post("/v1/customers/C-1/notes", json={"text": "B is the one in question", "invoice_ids": ["B"]})
        assert r.status_code == 201, r.text

        refused = {
            "text": [{"text": ""}, {"text": "   "}, {"text": "x" * 2001}, {}],
            "invoice_ids": [{"text": "x", "invoice_ids": ["NOPE"]}, {"text": "x", "invoice_ids": []}],
        }
        for field, bodies in refused.items():
            for body in bodies:
                r = await api.post("/v1/customers/C-1/notes", json=body)
                assert r.status_code == 422, (body, r.text)
                assert [e["field"] for e in r.json()["errors"]] == [field], (body, r.json())
        r = await api.post("/v1/customers/NOBODY/notes", json={"text": "x"})
        assert r.status_code == 404, r.text
        customer_tl = (await api.get("/v1/customers/C-1/timeline", params={"limit": 500})).json()["items"]

    notes = [e for e in customer_tl if e["kind"] == "note"]
    assert [(e["invoice_id"], e["reason"], e["detail"]["note"]) for e in notes] == [
        (None, "note by Colin Collector", "Asked for a copy of the invoice."),
        ("B", "note", "B is the one in question"),
    ]
    assert notes[0]["detail"]["actor"] == {"sub": "colin", "name": "Colin Collector"}
    assert [e["kind"] for e in await engine.timeline("B")][-1] == "note"
    assert "note" not in await engine.kinds("A")
