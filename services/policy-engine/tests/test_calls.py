"""The call log on the real stack (PostgreSQL, broker, simulated clock): a logged conversation holds every call about
its debts for 7 days (Reg F, 12 CFR 1006.14(b)(2)(ii)) through the timer's hold machinery, logged calls count toward
the call cap, and bad input is refused whole."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dunning_events.events import DunningCallLogged, DunningTaskAssigned, DunningTaskCompleted, DunningTaskSnoozed
from policy_engine.service_layer import calls

from .conftest import EngineHarness, customer, invoice

# One step only: a call 10 days after the due date (voice alone, so a held call is moved, not sent on a fallback).
CALL_ONLY = {"steps": [{"name": "call", "offset_days": 10, "channels": ["voice"], "template_id": "call",
                        "tone": "urgent"}]}  # fmt: skip


async def _log(engine: EngineHarness, cid: str, key: str | None = None, **body: Any) -> dict[str, Any]:
    async with engine.api() as api:
        r = await api.post(f"/v1/customers/{cid}/calls", json=body, headers={"Idempotency-Key": key} if key else {})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


async def test_a_conversation_holds_a_call_due_within_7_days_and_not_one_due_after_and_calls_count_toward_the_cap(
    engine: EngineHarness,
) -> None:
    async with engine.api("acme-admin-key") as admin:
        assert (await admin.put("/v1/policies/default", json=CALL_ONLY)).status_code == 200
    await engine.publish(*(customer(c, voice=True) for c in ("NEAR", "FAR", "CAPPED")))
    await engine.publish(
        invoice("INV-NEAR", "NEAR", due=engine.today - timedelta(days=7)),  # its call is due in 3 days
        invoice("INV-FAR", "FAR", due=engine.today + timedelta(days=-2)),  # its call is due in 8 days
        invoice("INV-CAPPED", "CAPPED", due=engine.today - timedelta(days=7)),
    )  # fmt: skip
    await engine.quiet()
    talked_at = engine.clock.now()

    near = await _log(engine, "NEAR", outcome="conversation", note="promised to pay on Friday")
    assert near["invoice_ids"] == ["INV-NEAR"]  # left out: every open debt of the customer
    until = talked_at + timedelta(days=7)
    assert datetime.fromisoformat(near["no_call_until"]) == until
    await _log(engine, "FAR", outcome="conversation", invoice_ids=["INV-FAR"])
    for _ in range(7):  # seven attempts without a conversation: the cap (7 in 7 days), not Reg F's conversation rule
        assert (await _log(engine, "CAPPED", outcome="no_answer"))["no_call_until"] is None

    # Day 3: both calls due now are held - one by the conversation, one by the cap - and moved, nothing is sent.
    await engine.next_moment("INV-NEAR")
    assert await engine.steps_due() == []
    held = {e.data.customer_id: e.data for e in await engine.events(type_="dunning.step.held")}
    assert held.keys() == {"NEAR", "CAPPED"}
    (talk,) = held["NEAR"].held
    assert talk.channel == "voice" and talk.rule == "conversation"
    assert talk.reason == (
        f"voice: a conversation with the debtor about this debt on {talked_at.date().isoformat()}; no call until "
        f"{until.isoformat()} (12 CFR 1006.14(b)(2)(ii))"
    )
    assert held["NEAR"].moved_to is not None and held["NEAR"].moved_to >= until and not held["NEAR"].sent
    assert held["CAPPED"].held[0].rule == "contact_cap"
    assert held["CAPPED"].held[0].reason.startswith("voice: contact cap reached (7 attempts about this debt")
    moved = next(e for e in await engine.timeline("INV-NEAR") if e["kind"] == "scheduled" and e["step"] == "call"
                 and "conversation" in e["reason"])  # fmt: skip
    assert datetime.fromisoformat((await engine.state("INV-NEAR"))["next_at"]) == held["NEAR"].moved_to
    assert moved["detail"]["dropped"]["voice"] == talk.reason

    # Once the 7 days are over the held call goes out (and the capped one, whose oldest attempt is as old); the call
    # due 8 days after its conversation goes out at its own moment, never held.
    await engine.next_moment("INV-NEAR")
    assert engine.clock.now() >= until
    assert sorted((s.customer_id, s.channels) for s in await engine.steps_due()) == [
        ("CAPPED", ["voice"]), ("NEAR", ["voice"])
    ]  # fmt: skip
    assert (await engine.state("INV-FAR"))["next_step"] == "call"
    await engine.next_moment("INV-FAR")
    far = next(s for s in await engine.steps_due() if s.customer_id == "FAR")
    assert far.channels == ["voice"] and far.scheduled_for.date() == talked_at.date() + timedelta(days=8)
    assert {e.data.customer_id for e in await engine.events(type_="dunning.step.held")} == {"NEAR", "CAPPED"}


async def test_a_logged_call_is_on_the_timeline_and_the_event_stream_once_per_idempotency_key(
    engine: EngineHarness,
) -> None:
    await engine.publish(customer("C-1", voice=True), customer("C-2"))
    await engine.publish(
        invoice("A", "C-1", due=engine.today + timedelta(days=20)), invoice("B", "C-1", due=engine.today),
        invoice("OTHER", "C-2", due=engine.today),
    )  # fmt: skip
    await engine.quiet()
    at = engine.clock.now() - timedelta(hours=2)

    first = await _log(engine, "C-1", "call-1", outcome="voicemail", invoice_ids=["B"], at=at.isoformat(),
                       note="left a message")  # fmt: skip
    again = await _log(engine, "C-1", "call-1", outcome="voicemail", invoice_ids=["B"], at=at.isoformat(),
                       note="left a message")  # fmt: skip
    assert again == first and first["invoice_ids"] == ["B"] and first["no_call_until"] is None

    entry = (await engine.timeline("B"))[-1]
    assert entry["kind"] == "call" and entry["invoice_id"] == "B"
    assert entry["reason"] == f"call logged (voicemail) at {at.isoformat()}: counts as a call attempt"
    assert entry["detail"]["note"] == "left a message" and entry["detail"]["call_id"] == first["call_id"]
    assert all(e["kind"] != "call" for e in await engine.timeline("A"))  # not talked about
    await engine.quiet()
    (logged,) = await engine.events(type_="dunning.call.logged")
    assert logged.data == DunningCallLogged(customer_id="C-1", call_id=first["call_id"], outcome="voicemail",
                                            invoice_ids=["B"], no_call_until=None, logged_by=None)  # fmt: skip
    assert logged.occurred_at == at and logged.subject == first["call_id"]

    # The acting person (the workspace's on-behalf-of header, wired at the service layer): on the timeline and event.
    runtime = engine.svc.runtime
    async with runtime.sessions() as session, session.begin():
        call = await calls.log_call(
            session, runtime.outbox, "acme", "C-1", outcome="conversation", invoice_ids=["A"], at=None, note=None,
            now=engine.clock.now(), actor_name="Colin Collector",
        )  # fmt: skip
    entry = (await engine.timeline("A"))[-1]
    assert entry["reason"] == (
        f"call logged (conversation) at {engine.clock.now().isoformat()} by Colin Collector: no call about this debt "
        f"until {call.no_call_until.isoformat()} (12 CFR 1006.14(b)(2)(ii))"  # type: ignore[union-attr]
    )
    assert entry["detail"]["logged_by"] == "Colin Collector"
    await engine.quiet()
    assert [e.data.logged_by for e in await engine.events(type_="dunning.call.logged")] == [None, "Colin Collector"]


async def test_a_call_with_bad_input_is_refused_naming_the_field_and_writes_nothing(engine: EngineHarness) -> None:
    await engine.publish(customer("C-1"), customer("C-2"))
    await engine.publish(invoice("A", "C-1", due=engine.today), invoice("OTHER", "C-2", due=engine.today))
    await engine.quiet()
    before = await engine.timeline("A")
    future = (engine.clock.now() + timedelta(minutes=5)).isoformat()

    async with engine.api() as api:
        missing = await api.post("/v1/customers/NOBODY/calls", json={"outcome": "conversation"})
        assert missing.status_code == 404 and "NOBODY" in missing.json()["detail"]
    async with engine.api("globex-api-key") as globex:  # another tenant's customer is unknown to this key
        assert (await globex.post("/v1/customers/C-1/calls", json={"outcome": "conversation"})).status_code == 404
    async with engine.api() as api:

        async def refused(body: dict[str, Any]) -> list[tuple[str, str]]:
            r = await api.post("/v1/customers/C-1/calls", json=body)
            assert r.status_code == 422, r.text
            return [(e["field"], e["reason"]) for e in r.json()["errors"]]

        assert await refused({"outcome": "conversation", "at": future}) == [
            ("at", f"must not be in the future (now is {engine.clock.now().isoformat()})")
        ]
        assert await refused({"outcome": "conversation", "invoice_ids": ["A", "NOPE", "OTHER", "A"]}) == [
            ("invoice_ids[1]", "unknown invoice NOPE"),
            ("invoice_ids[2]", "invoice OTHER is not the customer's (C-1)"),
            ("invoice_ids[3]", "invoice A is listed twice"),
        ]
        assert await refused({"outcome": "conversation", "invoice_ids": []}) == [
            ("invoice_ids", "must name at least one invoice (leave it out for all the open ones)")
        ]
        fields = [f for f, _ in await refused({"outcome": "shouted", "note": "x" * 2001})]
        assert any(f.endswith("outcome") for f in fields) and any(f.endswith("note") for f in fields)
        assert (await api.post("/v1/customers/C-1/calls", json={"outcome": "no_answer"})).status_code == 201

    after = await engine.timeline("A")
    assert after[: len(before)] == before and [e["kind"] for e in after[len(before) :]] == ["call"]
    await engine.quiet()
    assert len(await engine.events(type_="dunning.call.logged")) == 1  # only the accepted call


async def test_a_collector_task_assigned_snoozed_and_completed_is_on_the_timeline_of_its_invoices(
    engine: EngineHarness,
) -> None:
    await engine.publish(customer("C-1"), invoice("A", "C-1", due=engine.today + timedelta(days=3)))
    await engine.quiet()
    (step,) = await engine.steps_due()
    facts: dict[str, Any] = {"customer_id": "C-1", "task_id": "T-1", "step_id": step.step_id}
    until = engine.clock.now() + timedelta(days=2)
    await engine.publish(
        DunningTaskAssigned(**facts, invoice_ids=["A"], assignee_sub="colin", assignee_name="Colin Collector"),
        DunningTaskSnoozed(**facts, invoice_ids=["A"], until=until, by="Colin Collector"),
        DunningTaskCompleted(**facts, invoice_ids=["A"], outcome="promise_made", note="pays Friday",
                             by="Colin Collector"),
        DunningTaskCompleted(**{**facts, "task_id": "T-2"}, invoice_ids=["UNKNOWN"], outcome="not_needed"),
    )  # fmt: skip
    await engine.quiet()

    tasks = [e for e in await engine.timeline("A") if e["kind"] == "task"]
    assert [(e["step"], e["reason"]) for e in tasks] == [
        (step.step_name, "collector task assigned to Colin Collector"),
        (step.step_name, f"collector task snoozed until {until.isoformat()} by Colin Collector"),
        (step.step_name, "collector task completed (promise made) by Colin Collector"),
    ]
    assert tasks[-1]["detail"] == {"task_id": "T-1", "step_id": step.step_id, "by": "Colin Collector",
                                   "outcome": "promise_made", "note": "pays Friday"}  # fmt: skip
    async with engine.api() as api:  # a task about no invoice the engine knows: on the customer's timeline
        items = (await api.get("/v1/customers/C-1/timeline", params={"limit": 500})).json()["items"]
    [other] = [e for e in items if e["kind"] == "task" and e["detail"]["task_id"] == "T-2"]
    assert other["invoice_id"] is None and other["reason"] == "collector task completed (not needed)"
