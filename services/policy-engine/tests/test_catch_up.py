"""Onboarding a backlog and catching up after downtime: which step an old invoice gets, and that a hand-off to
collections never comes before a reminder reached the debtor (real PostgreSQL and broker, simulated clock)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from dunning_events.events import NotificationSent
from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import BrokerBackend

from .conftest import EngineHarness, customer, invoice, start_engine

# SIM_START is Monday 2 March 2026, 10:00 in Berlin: inside the contact window on a business day.
OLD = date(2025, 11, 2)  # 120 days before: past every step of the default policy, the hand-off (+110) too


def sent_to_debtor(step: Any, delivery_id: str, channel: str = "email") -> NotificationSent:
    """What the notifier reports once the provider accepted the step's message."""
    return NotificationSent(customer_id=step.customer_id, delivery_id=delivery_id, step_id=step.step_id,
                            channel=channel, invoice_ids=[i.invoice_id for i in step.invoices])  # fmt: skip


async def put_policy(engine: EngineHarness, **changes: Any) -> None:
    async with engine.api("acme-admin-key") as admin:
        base = (await admin.get("/v1/policies/default")).json()
        doc = {k: v for k, v in base.items() if k != "version"} | changes
        r = await admin.put("/v1/policies/default", json=doc)
        assert r.status_code == 200, r.text


async def test_an_invoice_first_seen_far_overdue_gets_a_reminder_now_and_the_hand_off_only_after_it(
    engine: EngineHarness,
) -> None:
    await engine.publish(customer("C-1"), invoice("OLD-1", due=OLD))
    await engine.quiet()

    (first,) = await engine.steps_due()
    assert first.step_name == "final_notice"  # the latest reminder whose day passed, not the hand-off
    assert first.channels == ["letter", "email"] and first.actions == []
    timeline = await engine.timeline("OLD-1")
    skipped = [e["step"] for e in timeline if e["kind"] == "skipped"]
    assert skipped == ["pre_due_reminder", "due_date_notice", "follow_up_1", "follow_up_2", "follow_up_3",
                       "firm_reminder_1", "firm_reminder_2", "sms_escalation", "call_escalation"]  # fmt: skip
    choice = next(e for e in timeline if e["kind"] == "scheduled" and e["step"] == "final_notice")
    assert "catching up when dunning started, 120 days after the due date" in choice["reason"]
    assert "catch_up.start_with: latest_passed_step" in choice["reason"]
    assert (
        "collections_hand_off hands off to collections only after a reminder has reached the debtor"
        in (choice["reason"])
    )
    assert choice["detail"]["held_back"] == ["collections_hand_off"]
    # The hand-off keeps the policy's gap after the final notice (110 - 95 = 15 days), not the invoice's dates.
    state = await engine.state("OLD-1")
    assert state["next_step"] == "collections_hand_off"
    assert state["next_at"] == "2026-03-17T09:00:00+00:00"

    await engine.publish(sent_to_debtor(first, "D-1"))
    await engine.next_moment("OLD-1")
    assert [s.step_name for s in await engine.steps_due()] == ["final_notice", "collections_hand_off"]
    assert (await engine.state("OLD-1"))["closed_reason"] == "handed off to collections"


async def test_a_hand_off_waits_while_no_reminder_reached_the_debtor_and_goes_ahead_once_one_does(
    engine: EngineHarness,
) -> None:
    await engine.publish(customer("C-1"), invoice("OLD-1", due=OLD))
    await engine.quiet()
    (first,) = await engine.steps_due()  # final notice; the notifier never reports it sent (say, it bounced)
    await engine.next_moment("OLD-1")

    assert [s.step_name for s in await engine.steps_due()] == ["final_notice"]
    state = await engine.state("OLD-1")
    assert (state["status"], state["next_step"], state["next_at"]) == ("open", "collections_hand_off", None)
    waits = (await engine.timeline("OLD-1"))[-1]
    assert waits["kind"] == "paused" and waits["step"] == "collections_hand_off"
    assert "no reminder has reached the debtor yet" in waits["reason"]
    await engine.advance(days=30)  # nothing happens while it waits, and the reason is written once
    assert [s.step_name for s in await engine.steps_due()] == ["final_notice"]
    assert [e["kind"] for e in await engine.timeline("OLD-1")].count("paused") == 1

    # A collector task is not a reminder to the debtor; an email the provider accepted is.
    await engine.publish(sent_to_debtor(first, "D-task", channel="task"))
    await engine.quiet()
    assert (await engine.state("OLD-1"))["next_at"] is None
    await engine.publish(sent_to_debtor(first, "D-2"))
    await engine.quiet()
    assert [s.step_name for s in await engine.steps_due()] == ["final_notice", "collections_hand_off"]
    resumed = [e for e in await engine.timeline("OLD-1") if e["kind"] == "resumed"]
    assert resumed and "a reminder reached the debtor (email)" in resumed[-1]["reason"]


async def test_a_policy_may_hand_off_without_a_reminder_if_it_says_so(engine: EngineHarness) -> None:
    await put_policy(engine, hand_off_requires_reminder=False)
    await engine.publish(customer("C-1"), invoice("OLD-1", due=OLD))
    await engine.quiet()
    assert [s.step_name for s in await engine.steps_due()] == ["collections_hand_off"]


async def test_a_policy_may_start_a_backlog_from_the_first_overdue_step_keeping_the_spacing(
    engine: EngineHarness,
) -> None:
    await put_policy(engine, catch_up={"start_with": "first_overdue_step", "after_downtime_hours": 24})
    await engine.publish(customer("C-1"), invoice("OLD-1", due=OLD))
    await engine.quiet()

    assert [s.step_name for s in await engine.steps_due()] == ["follow_up_1"]
    skipped = [e["step"] for e in await engine.timeline("OLD-1") if e["kind"] == "skipped"]
    assert skipped == ["pre_due_reminder", "due_date_notice"]
    # follow_up_2 comes the policy's 11 days after follow_up_1 (14 - 3), on a business day at 10:00 Berlin.
    state = await engine.state("OLD-1")
    assert (state["next_step"], state["next_at"]) == ("follow_up_2", "2026-03-13T09:00:00+00:00")


async def test_a_policy_may_skip_every_passed_step_of_a_backlog(engine: EngineHarness) -> None:
    await put_policy(engine, catch_up={"start_with": "skip_passed_steps", "after_downtime_hours": 24})
    recent = engine.today - timedelta(days=20)  # follow_up_3 (+28) is still ahead
    await engine.publish(customer("C-1"), invoice("OLD-1", due=OLD), invoice("NEW-1", due=recent))
    await engine.quiet()

    assert await engine.steps_due() == []
    old = await engine.state("OLD-1")
    assert (old["next_step"], old["next_at"]) == (None, None)
    assert "catch_up.start_with: skip_passed_steps" in (await engine.timeline("OLD-1"))[-1]["reason"]
    new = await engine.state("NEW-1")
    assert new["next_step"] == "follow_up_3" and new["next_at"] == "2026-03-10T09:00:00+00:00"


async def test_steps_whose_days_passed_during_a_long_downtime_follow_the_same_rule(
    engine: EngineHarness, database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> None:
    await engine.publish(customer("C-1"), invoice("INV-1", due=engine.today + timedelta(days=3)))
    await engine.quiet()  # the pre-due reminder goes out now
    (pre,) = await engine.steps_due()
    await engine.publish(sent_to_debtor(pre, "D-1"))
    await engine.quiet()
    await engine.svc.stop()
    clock.advance(days=38)  # down until Thursday 9 April: the due-date notice, three follow-ups and the first
    # firm reminder (due today) passed
    engine.services[0] = await start_engine(database_url, broker, clock)
    await engine.quiet()

    steps = await engine.steps_due()
    assert [s.step_name for s in steps] == ["pre_due_reminder", "firm_reminder_1"]  # no burst
    assert steps[-1].late
    timeline = await engine.timeline("INV-1")
    superseded = [e for e in timeline if e["kind"] == "skipped"]
    assert [e["step"] for e in superseded] == ["due_date_notice", "follow_up_1", "follow_up_2", "follow_up_3"]
    assert all("superseded by firm_reminder_1" in e["reason"] for e in superseded)
    sent = [e for e in timeline if e["kind"] == "sent"][-1]
    assert "catch_up.start_with: latest_passed_step" in sent["detail"]["catch_up"]
