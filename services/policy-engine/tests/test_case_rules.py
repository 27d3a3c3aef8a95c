"""The case rules on their own (pure): starting, firing, pausing, escalating, skipping — each with its reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from policy_engine.domain import cases as rules
from policy_engine.domain.cases import CapCheck, Case, ChannelHold, Debtor, StepHold
from policy_engine.domain.policy import DEFAULT_POLICY, Policy, ReEscalation, validate_policy

BERLIN = Debtor("C-1", time_zone="Europe/Berlin", country="DE")
NO_CAPS = CapCheck(lambda case, cap: (0, None))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def new_case(due: date | None = date(2026, 3, 12), balance: int = 100_000) -> Case:
    return Case("acme", "I-1", "C-1", "N-1", "EUR", balance, balance, due)


def kinds(case: Case) -> list[tuple[str, str | None]]:
    return [(n.kind, n.step) for n in case.notes]


def test_a_new_invoice_is_scheduled_for_its_first_step_at_10_local() -> None:
    case = new_case()
    rules.start(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 2, 9))
    assert (case.next_step, case.next_at) == ("pre_due_reminder", utc(2026, 3, 9, 9))  # Sat 7th -> Mon 9th


def test_an_imported_old_invoice_starts_at_the_step_fitting_its_age_not_with_a_burst() -> None:
    case = new_case(due=date(2026, 1, 20))  # 41 days overdue on 2026-03-02
    rules.start(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 2, 9))
    assert case.next_step == "firm_reminder_1"
    assert [k for k, _ in kinds(case)] == ["skipped"] * 5 + ["scheduled"]
    assert case.next_at == utc(2026, 3, 2, 9)  # now is inside the window


def test_no_due_date_zero_balance_or_below_minimum_means_no_dunning_with_the_reason() -> None:
    minimum = Policy(validate_policy({**DEFAULT_POLICY.doc.model_dump(mode="json"), "minimum_balance": {"EUR": 20}}), 2)
    for case, policy, reason in (
        (new_case(due=None), DEFAULT_POLICY, "no due date"),
        (new_case(balance=0), DEFAULT_POLICY, "balance is zero"),
        (new_case(balance=1999), minimum, "below the policy minimum 20.00 EUR"),
    ):
        rules.start(case, BERLIN, policy, utc(2026, 3, 2, 9))
        assert case.status == "idle" and case.next_at is None
        assert reason in case.notes[-1].reason


def fire(case: Case, now: datetime, debtor: Debtor = BERLIN, policy: Policy = DEFAULT_POLICY, **kw: object):  # type: ignore[no-untyped-def]
    return rules.decide(case, debtor, policy, now, kw.get("stale"), kw.get("caps", NO_CAPS))  # type: ignore[arg-type]


def test_after_downtime_the_latest_due_step_supersedes_the_earlier_ones_and_says_it_is_late() -> None:
    case = new_case()
    rules.start(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 2, 9))
    firing = fire(case, utc(2026, 3, 13, 9))  # pre-due (9th) and due-date notice (12th) both passed
    assert firing is not None and firing.step.name == "due_date_notice"
    assert firing.late_by == timedelta(days=1)
    assert kinds(case)[-1] == ("skipped", "pre_due_reminder")
    assert "superseded by due_date_notice" in case.notes[-1].reason


def test_late_step_skip_policy_skips_a_late_step_with_the_reason() -> None:
    skip = Policy(validate_policy({**DEFAULT_POLICY.doc.model_dump(mode="json"), "late_step": "skip"}), 2)
    case = new_case()
    rules.start(case, BERLIN, skip, utc(2026, 3, 2, 9))
    assert fire(case, utc(2026, 3, 9, 13), policy=skip) is None
    assert kinds(case)[-2:] == [("skipped", "pre_due_reminder"), ("scheduled", "due_date_notice")]
    assert "late_step: skip" in case.notes[-2].reason


def test_a_step_reached_outside_the_window_moves_to_the_next_allowed_moment() -> None:
    case = new_case()
    rules.start(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 2, 9))
    case.planned_at = utc(2026, 3, 9, 20, 30)  # 21:30 Berlin
    assert fire(case, utc(2026, 3, 9, 20, 30)) is None
    assert case.next_at == utc(2026, 3, 10, 7)  # 08:00 Berlin next day
    assert "outside the debtor's contact window" in case.notes[-1].reason


def sms_step_case() -> Case:
    case = new_case(due=date(2026, 1, 1))
    rules.start(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 6, 9))
    assert case.next_step == "sms_escalation"
    return case


def test_no_sms_without_consent_and_an_opt_out_blocks_the_channel() -> None:
    case = sms_step_case()
    firing = fire(case, utc(2026, 3, 6, 9))
    assert firing is not None and firing.channels == ["email"]
    assert firing.dropped == {"sms": "sms: no consent on record"}
    assert case.holds == [StepHold("sms_escalation", "default", (ChannelHold("sms", "consent", "sms: no consent on record"),),
                                   sent=True, moved_to=None)]  # fmt: skip
    consented = Debtor("C-1", time_zone="Europe/Berlin", country="DE", consent={"sms": True})
    assert fire(sms_step_case(), utc(2026, 3, 6, 9), consented).channels == ["sms", "email"]  # type: ignore[union-attr]
    opted_out = Debtor("C-1", time_zone="Europe/Berlin", consent={"sms": True}, revoked=frozenset({"sms", "email"}))
    case = sms_step_case()
    assert fire(case, utc(2026, 3, 6, 9), opted_out) is None
    assert case.notes[-2].kind == "skipped" and "no allowed channel" in case.notes[-2].reason
    assert [(h.sent, h.moved_to, [c.rule for c in h.channels]) for h in case.holds] == [
        (False, None, ["consent", "consent"])
    ]


def test_a_call_capped_at_7_attempts_in_7_days_waits_until_the_cap_frees() -> None:
    case = new_case(due=date(2026, 1, 1))
    rules.start(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 13, 9))
    assert case.next_step == "call_escalation"
    consented = Debtor("C-1", time_zone="Europe/Berlin", country="DE", consent={"voice": True})
    oldest = utc(2026, 3, 8, 10)
    capped = CapCheck(lambda c, cap: (7, oldest))
    firing = fire(case, utc(2026, 3, 13, 9), consented, caps=capped)
    # voice is capped; the fallback channel (task for a collector) still goes out
    assert firing is not None and firing.channels == ["task"] and "contact cap reached" in firing.dropped["voice"]
    only_voice = Policy(validate_policy({**DEFAULT_POLICY.doc.model_dump(mode="json"), "steps": [
        {"name": "call", "offset_days": 70, "channels": ["voice"], "template_id": "t", "tone": "urgent"}]}), 3)  # fmt: skip
    case = new_case(due=date(2026, 1, 1))
    rules.start(case, BERLIN, only_voice, utc(2026, 3, 13, 9))
    assert fire(case, utc(2026, 3, 13, 9), consented, only_voice, caps=capped) is None
    assert case.next_at == utc(2026, 3, 16, 7)  # 15th 10:00 UTC frees the cap; a Sunday -> Monday 08:00 Berlin
    [hold] = case.holds
    assert (hold.step, hold.sent, hold.moved_to) == ("call", False, utc(2026, 3, 16, 7))
    assert [(c.channel, c.rule) for c in hold.channels] == [("voice", "contact_cap")]


def test_a_conversation_about_the_debt_holds_its_call_for_7_days_and_a_task_goes_out_meanwhile() -> None:
    consented = Debtor("C-1", time_zone="Europe/Berlin", country="DE", consent={"voice": True})
    talked = CapCheck(lambda c, cap: (0, None), lambda c: utc(2026, 3, 10, 14))
    case = new_case(due=date(2026, 1, 1))
    rules.start(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 13, 9))
    firing = fire(case, utc(2026, 3, 13, 9), consented, caps=talked)
    assert firing is not None and firing.channels == ["task"]  # the collector's task is work, not a call
    assert firing.dropped["voice"] == (
        "voice: a conversation with the debtor about this debt on 2026-03-10; no call until "
        "2026-03-17T14:00:00+00:00 (12 CFR 1006.14(b)(2)(ii))"
    )
    assert [(c.channel, c.rule) for h in case.holds for c in h.channels] == [("voice", "conversation")]
    only_voice = Policy(validate_policy({**DEFAULT_POLICY.doc.model_dump(mode="json"), "steps": [
        {"name": "call", "offset_days": 70, "channels": ["voice"], "template_id": "t", "tone": "urgent"}]}), 3)  # fmt: skip
    case = new_case(due=date(2026, 1, 1))
    rules.start(case, BERLIN, only_voice, utc(2026, 3, 13, 9))
    assert fire(case, utc(2026, 3, 13, 9), consented, only_voice, caps=talked) is None
    assert case.next_at == utc(2026, 3, 17, 14)  # 7 days after the conversation (inside the contact window)
    assert case.holds[0].moved_to == utc(2026, 3, 17, 14)
    # Seven days on, the same conversation holds nothing.
    firing = fire(case, utc(2026, 3, 17, 14), consented, only_voice, caps=talked)
    assert firing is not None and firing.channels == ["voice"]


def test_a_pause_keeps_the_step_and_resume_continues_where_it_was_shifting_the_rest() -> None:
    case = new_case()
    rules.start(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 2, 9))
    rules.set_pause(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 3, 9), add=("dispute",), cause="dispute opened")
    assert case.next_at is None and case.next_step == "pre_due_reminder"
    rules.set_pause(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 20, 9), remove=("dispute",), cause="resolved")
    assert kinds(case)[-2:] == [("paused", "pre_due_reminder"), ("resumed", "pre_due_reminder")]
    assert case.next_at == utc(2026, 3, 20, 9) and case.shift_days == 13


def test_a_broken_promise_escalates_to_the_next_firmer_step_on_the_next_business_day() -> None:
    case = new_case(due=date(2026, 2, 20))
    rules.start(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 2, 9))  # follow_up_2 (gentle) is pending
    case.last_tone = "gentle"
    rules.set_pause(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 2, 10), add=("promise",))
    case.pause_reasons.remove("promise")
    rules.escalate(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 6, 15), ReEscalation(), "promise P-1 broken")
    # Friday afternoon -> Monday 10:00 Berlin; follow-ups passed over; the first firm reminder goes out.
    assert (case.next_step, case.next_at) == ("firm_reminder_1", utc(2026, 3, 9, 9))
    assert [k for k, _ in kinds(case)][-3:] == ["skipped", "skipped", "escalated"]


def test_a_pre_due_reminder_is_never_sent_after_the_due_date() -> None:
    only_pre = Policy(validate_policy({**DEFAULT_POLICY.doc.model_dump(mode="json"), "steps": [
        {"name": "pre", "offset_days": -3, "channels": ["email"], "template_id": "t", "tone": "friendly"},
        {"name": "late", "offset_days": 20, "channels": ["email"], "template_id": "t", "tone": "firm"}]}), 4)  # fmt: skip
    case = new_case()
    rules.start(case, BERLIN, only_pre, utc(2026, 3, 2, 9))
    assert fire(case, utc(2026, 3, 13, 9), policy=only_pre) is None
    assert "never sent after it" in case.notes[-2].reason and case.next_step == "late"


def test_which_policy_customer_assignment_then_segment_then_applicability_by_priority_then_default() -> None:
    def pol(pid: str, priority: int, **applies: object) -> Policy:
        doc = {**DEFAULT_POLICY.doc.model_dump(mode="json"), "id": pid, "priority": priority, "applies_to": applies}
        return Policy(validate_policy(doc), 1)

    policies = {
        "default": DEFAULT_POLICY,
        "chronic": pol("chronic", 10, late_payer="chronic", chronic_late_after=3),
        "first": pol("first", 20, late_payer="first_time"),
        "usd-big": pol("usd-big", 5, currencies=["USD"], amount={"min": 500}),
        "vip": pol("vip", 1, tags_any=["vip"]),
    }
    case = new_case()

    def resolved(debtor: Debtor, c: Case = case, assignments: dict[tuple[str, str], str] | None = None) -> str:
        return rules.resolve_policy(debtor, c, policies, assignments or {})[0].id

    assert resolved(Debtor("C-1", late_invoice_count=0)) == "first"
    assert resolved(Debtor("C-1", late_invoice_count=3)) == "chronic"
    # This invoice's own lateness does not count towards the customer's history.
    late_case = new_case()
    late_case.went_late = True
    assert resolved(Debtor("C-1", late_invoice_count=3), late_case) == "default"
    assert resolved(Debtor("C-1", tags=frozenset({"vip"}), late_invoice_count=5)) == "vip"
    usd = Case("acme", "I-2", "C-1", "N-2", "USD", 60_000, 60_000, date(2026, 3, 12))
    assert resolved(Debtor("C-1", late_invoice_count=1), usd) == "usd-big"
    seg = Debtor("C-1", segment="smb", late_invoice_count=0)
    assert resolved(seg, assignments={("segment", "smb"): "chronic"}) == "chronic"
    both = {("segment", "smb"): "chronic", ("customer", "C-1"): "vip"}
    assert resolved(seg, assignments=both) == "vip"


def test_the_contact_window_text_says_which_days_the_policy_allows() -> None:
    every_day = Policy(validate_policy({**DEFAULT_POLICY.doc.model_dump(mode="json"),
                                        "calendar": {"business_days_only": False}}), 2)  # fmt: skip
    for policy, days in ((DEFAULT_POLICY, "business days"), (every_day, "every day")):
        case = new_case()
        rules.start(case, BERLIN, policy, utc(2026, 3, 2, 9))
        case.planned_at = utc(2026, 3, 9, 20, 30)  # 21:30 Berlin
        assert fire(case, utc(2026, 3, 9, 20, 30), policy=policy) is None
        assert case.notes[-1].reason.endswith(f"outside the debtor's contact window (08:00-21:00 local, {days})")


def test_a_hand_off_reached_before_any_reminder_reached_the_debtor_waits_and_says_so_once() -> None:
    case = new_case(due=date(2025, 11, 2))
    rules.start(case, BERLIN, DEFAULT_POLICY, utc(2026, 3, 2, 9))
    assert case.next_step == "final_notice"
    firing = fire(case, utc(2026, 3, 2, 9))
    assert firing is not None
    rules.mark_sent(firing, BERLIN, utc(2026, 3, 2, 9), "s-1", [], [])
    assert case.next_step == "collections_hand_off"
    for _ in range(2):
        case.next_at = utc(2026, 3, 17, 9)
        assert fire(case, utc(2026, 3, 17, 9)) is None
    assert case.awaiting_reminder and case.next_at is None
    assert [n.kind for n in case.notes].count("paused") == 1
    case.reminded_at, case.awaiting_reminder, case.next_at = utc(2026, 3, 2, 9, 5), False, utc(2026, 3, 17, 9)
    firing = fire(case, utc(2026, 3, 17, 9))
    assert firing is not None and firing.step.name == "collections_hand_off"


def test_a_broken_promise_lifts_its_pause_but_a_promise_still_standing_keeps_it() -> None:
    case = new_case()
    case.pause_reasons, case.promise_ids, case.plan_id = ["promise", "payment_plan"], ["P-1", "P-2"], "PL-1"
    rules.arrangement_broken(case, promise_id="P-1")
    assert (case.promise_ids, case.pause_reasons) == (["P-2"], ["promise", "payment_plan"])
    rules.arrangement_broken(case, promise_id="P-2", plan=True)
    assert (case.promise_ids, case.pause_reasons, case.plan_id) == ([], [], None)
