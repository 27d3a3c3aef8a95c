"""Pause on dispute, promise, payment plan and dunning blocks; resume where it was; re-escalate on a break."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from dunning_events.events import (
    DisputeOpened,
    DisputeResolved,
    Instalment,
    PlanCompleted,
    PlanCreated,
    PlanDefaulted,
    PromiseBroken,
    PromiseCancelled,
    PromiseCreated,
)

from .conftest import EngineHarness, customer, invoice


def promise(pid: str, *invoices: str, cid: str = "C-1") -> PromiseCreated:
    return PromiseCreated(
        customer_id=cid, promise_id=pid, invoice_ids=list(invoices), currency="EUR", amount=Decimal("1000.00"),
        promised_date=datetime(2026, 3, 10).date(), deadline=datetime(2026, 3, 10, 22, 59, tzinfo=UTC),
        recorded_by="collector",
    )  # fmt: skip


def broken(pid: str, *invoices: str, count: int = 1) -> PromiseBroken:
    return PromiseBroken(
        customer_id="C-1", promise_id=pid, invoice_ids=list(invoices), currency="EUR", amount=Decimal("1000.00"),
        received=Decimal(0), shortfall=Decimal("1000.00"), partially_kept=False,
        deadline=datetime(2026, 3, 10, 22, 59, tzinfo=UTC), broken_promise_count=count,
    )  # fmt: skip


async def start_overdue(engine: EngineHarness, *ids: str) -> None:
    """Invoices due Thursday the 5th: pre-due reminder now, due-date notice Thursday 10:00 Berlin."""
    await engine.publish(customer(), *(invoice(i, due=engine.today + timedelta(days=3)) for i in ids))
    await engine.next_moment(ids[0])  # the due-date notice goes out


async def test_a_dispute_pauses_dunning_and_resolving_it_resumes_where_it_was(engine: EngineHarness) -> None:
    await start_overdue(engine, "INV-1")
    await engine.publish(DisputeOpened(customer_id="C-1", invoice_id="INV-1", reason="wrong quantity"))
    await engine.advance(days=20)
    assert [s.step_name for s in await engine.steps_due()] == ["pre_due_reminder", "due_date_notice"]
    state = await engine.state("INV-1")
    assert (state["paused_by"], state["next_step"], state["next_at"]) == (["dispute"], "follow_up_1", None)

    await engine.publish(DisputeResolved(customer_id="C-1", invoice_id="INV-1", resolution="credit issued"))
    await engine.quiet()
    entries = await engine.timeline("INV-1")
    paused, resumed = entries[-4], entries[-3]
    assert paused["kind"] == "paused" and "the invoice is disputed (dispute opened: wrong quantity)" in paused["reason"]
    assert resumed["kind"] == "resumed" and resumed["step"] == "follow_up_1"
    assert [s.step_name for s in await engine.steps_due()][-1] == "follow_up_1"  # at once: its day had passed


async def test_a_promise_pauses_and_a_broken_one_escalates_to_the_next_firmer_step_on_the_next_business_day(
    engine: EngineHarness,
) -> None:
    async with engine.api("acme-admin-key") as admin:
        tough = {
            "id": "chronic-promise-breakers", "priority": 5,
            "applies_to": {"promise_breaker": "chronic", "chronic_promise_breaker_after": 1},
            "steps": [
                {"name": "due", "offset_days": 0, "channels": ["email"], "template_id": "due", "tone": "neutral"},
                {"name": "firm", "offset_days": 5, "channels": ["email"], "template_id": "firm", "tone": "firm"},
                {"name": "final", "offset_days": 20, "channels": ["letter"], "template_id": "final", "tone": "final"},
            ],
        }  # fmt: skip
        assert (await admin.post("/v1/policies", json=tough)).status_code == 201
    await start_overdue(engine, "INV-1")
    await engine.publish(promise("P-1", "INV-1"))
    await engine.advance(days=1)  # Friday the 6th
    assert (await engine.state("INV-1"))["paused_by"] == ["promise"]

    await engine.publish(broken("P-1", "INV-1"))
    await engine.quiet()
    state = await engine.state("INV-1")
    # One broken promise makes a chronic breaker under that policy; its next firmer step after the
    # neutral due-date notice is `firm`, on Monday (the next business day) at 10:00 Berlin.
    assert (state["policy_id"], state["next_step"], state["next_at"]) == (
        "chronic-promise-breakers", "firm", "2026-03-09T09:00:00+00:00",
    )  # fmt: skip
    escalated = [e for e in await engine.timeline("INV-1") if e["kind"] == "escalated"]
    assert "promise P-1 broken (shortfall 1000.00 EUR): escalating to firm" in escalated[0]["reason"]
    await engine.next_moment("INV-1")
    last = (await engine.steps_due())[-1]
    assert (last.policy_id, last.step_name) == ("chronic-promise-breakers", "firm")


async def test_a_kept_or_cancelled_promise_resumes_dunning(engine: EngineHarness) -> None:
    await start_overdue(engine, "A", "B")
    await engine.publish(promise("P-1", "A", "B"))
    await engine.advance(days=10)
    assert len(await engine.steps_due()) == 2  # pre-due and due-date notices (both invoices in one message)
    await engine.publish(PromiseCancelled(customer_id="C-1", promise_id="P-1", invoice_ids=["A"], reason="withdrawn"))
    await engine.quiet()
    assert (await engine.state("A"))["paused_by"] == []
    assert (await engine.state("B"))["paused_by"] == ["promise"]
    assert (await engine.timeline("A"))[-1]["reason"].startswith(
        "resumed: a promise to pay is active no longer (promise P-1 cancelled)"
    )


async def test_a_payment_plan_pauses_a_default_escalates_and_a_completion_resumes(engine: EngineHarness) -> None:
    await start_overdue(engine, "P1")
    await engine.publish(invoice("P2", due=engine.today - timedelta(days=1)))
    await engine.quiet()
    inst = [Instalment(promise_id="I-1", due_date=engine.today + timedelta(days=7), amount=Decimal("500.00"))]
    await engine.publish(
        PlanCreated(customer_id="C-1", plan_id="PL-1", invoice_ids=["P1"], currency="EUR", total=Decimal(1000), instalments=inst),
        PlanCreated(customer_id="C-1", plan_id="PL-2", invoice_ids=["P2"], currency="EUR", total=Decimal(1000), instalments=inst),
    )  # fmt: skip
    await engine.advance(days=20)
    assert {(await engine.state(i))["paused_by"][0] for i in ("P1", "P2")} == {"payment_plan"}
    before = len(await engine.steps_due())

    await engine.publish(
        PlanDefaulted(customer_id="C-1", plan_id="PL-1", invoice_ids=["P1"], reason="instalment missed", strikes=2),
        PlanCompleted(customer_id="C-1", plan_id="PL-2", invoice_ids=["P2"]),
    )
    await engine.quiet()
    # P2 resumes where it was (its step's day has passed: at once); P1 escalates on the next business day.
    new = (await engine.steps_due())[before:]
    assert [[i.invoice_id for i in s.invoices] for s in new] == [["P2"]]
    p1 = await engine.timeline("P1")
    assert any(e["kind"] == "escalated" and "payment plan PL-1 defaulted" in e["reason"] for e in p1)
    assert [e["kind"] for e in await engine.timeline("P2")][-3:] == ["resumed", "sent", "scheduled"]


async def test_customer_and_invoice_dunning_blocks_pause_until_cleared(engine: EngineHarness) -> None:
    await start_overdue(engine, "A", "B")
    async with engine.api() as api:
        r = await api.put("/v1/customers/C-1/dunning-block", json={"reason": "key account, CFO call"})
        assert r.status_code == 200, r.text
        assert (await api.put("/v1/invoices/B/dunning-block", json={"reason": "under review"})).status_code == 200
        assert (await api.put("/v1/invoices/NOPE/dunning-block", json={})).status_code == 404
        assert (await api.put("/v1/customers/C-1/dunning-block", json={"why": 1})).status_code == 422
    sent_before = len(await engine.steps_due())
    await engine.advance(days=30)
    assert len(await engine.steps_due()) == sent_before
    assert (await engine.state("A"))["paused_by"] == ["customer_block"]
    assert sorted((await engine.state("B"))["paused_by"]) == ["customer_block", "invoice_block"]

    async with engine.api() as api:
        assert (await api.delete("/v1/customers/C-1/dunning-block")).status_code == 200
        customer_tl = (await api.get("/v1/customers/C-1/timeline", params={"limit": 500})).json()["items"]
    await engine.quiet()
    assert (await engine.timeline("A"))[-1]["kind"] == "resumed"
    assert (await engine.state("B"))["paused_by"] == ["invoice_block"]
    assert any(e["invoice_id"] is None and "key account, CFO call" in e["reason"] for e in customer_tl)
    await engine.next_moment("A")  # cleared on a Saturday: Monday 10:00 Berlin
    steps = await engine.steps_due()
    assert len(steps) == sent_before + 1
    assert [i.invoice_id for i in steps[-1].invoices] == ["A"]  # B stays blocked
