"""A dunning case (one open invoice) and every rule that moves it: start, plan, pause, resume, escalate,
fire, cancel. Pure: the service layer loads a case, calls these, and writes back the case and its notes.

Every decision appends a Note (the timeline entry: kind, reason, step, detail), so nothing the engine
decides is unexplained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from dunning_events.events import supersedes
from dunning_events.money import from_minor, minor_units
from policy_engine.domain.calendar import ContactWindow, allowed_at
from policy_engine.domain.closure import ClosureReason
from policy_engine.domain.conversations import CALL_CHANNELS, hold_reason, no_call_until
from policy_engine.domain.policy import TONE_RANK, ContactCap, Policy, PolicyDocument, ReEscalation, Step

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PAUSE_TEXT = {
    "dispute": "the invoice is disputed",
    "promise": "a promise to pay is active",
    "payment_plan": "a payment plan is active",
    "invoice_block": "the invoice has a dunning block",
    "customer_block": "the customer has a dunning block",
    "stale_ledger": "the ledger data is stale",
}

# Channels that need consent on record before any automated contact (TCPA); the others need only
# the absence of an opt-out.
CONSENT_REQUIRED = frozenset({"sms", "voice"})
NO_CONSENT_NEEDED = frozenset({"task"})


def pause_text(reasons: list[str] | set[str]) -> str:
    return ", ".join(PAUSE_TEXT.get(r, r) for r in sorted(reasons))


@dataclass(slots=True)
class Note:
    kind: str  # scheduled | sent | skipped | paused | resumed | cancelled | escalated
    reason: str
    step: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Debtor:
    """What the engine knows of a customer (a projection of customer.upserted and friends)."""

    customer_id: str
    time_zone: str | None = None
    country: str | None = None
    segment: str | None = None
    tags: frozenset[str] = frozenset()
    consent: dict[str, bool] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()
    blocked: bool = False
    erased: bool = False  # customer.erased applied: never dunned again
    late_invoice_count: int = 0
    broken_promise_count: int = 0

    def may_contact_on(self, channel: str) -> str | None:
        """None if the channel may be used, else why not (always a matter of consent: CONSENT_RULE)."""
        if channel in NO_CONSENT_NEEDED:
            return None
        if channel in self.revoked:
            return f"{channel}: the customer opted out"
        if channel in CONSENT_REQUIRED:
            return None if self.consent.get(channel) is True else f"{channel}: no consent on record"
        return None if self.consent.get(channel, True) else f"{channel}: the customer did not consent"


# Which rule held a channel back (dunning.step.held's `rule`), named where the refusal is made.
CONSENT_RULE = "consent"  # Debtor.may_contact_on: opted out, no consent on record
CAP_RULE = "contact_cap"  # the policy's contact cap for the channel was reached
CONVERSATION_RULE = "conversation"  # a conversation about the debt in the last 7 days (domain.conversations)


@dataclass(frozen=True, slots=True)
class ChannelHold:
    channel: str
    rule: str  # CONSENT_RULE | CAP_RULE | CONVERSATION_RULE | "other"
    reason: str


@dataclass(frozen=True, slots=True)
class StepHold:
    """A decision held channels of a step back: sent on the others (`sent`), or moved to `moved_to`, or skipped."""

    step: str
    policy_id: str
    channels: tuple[ChannelHold, ...]
    sent: bool
    moved_to: datetime | None


@dataclass
class Case:
    """One invoice under dunning: a mutable working copy of its row."""

    tenant_id: str
    invoice_id: str
    customer_id: str
    number: str
    currency: str
    total_minor: int
    balance_minor: int
    due_date: date | None
    status: str = "open"  # open | idle (no dunning, may revive) | closed
    pause_reasons: list[str] = field(default_factory=list)
    promise_ids: list[str] = field(default_factory=list)
    plan_id: str | None = None
    block_reason: str | None = None
    block_until: datetime | None = None  # the invoice block ends by itself then (None: until cleared)
    policy_id: str | None = None
    policy_version: int | None = None
    next_step: str | None = None
    planned_at: datetime | None = None
    next_at: datetime | None = None
    shift_days: int = 0  # days the remaining schedule moved because of pauses
    done_steps: list[str] = field(default_factory=list)
    last_offset: int | None = None
    last_tone: str | None = None
    last_sent_at: datetime | None = None
    last_step_id: str | None = None
    went_late: bool = False
    in_default: bool = False
    compensation_charged: bool = False
    replan: bool = False
    reminded_at: datetime | None = None  # when a reminder first reached the debtor (notification.sent)
    awaiting_reminder: bool = False  # a hand-off waits for that first reminder
    closed_reason: str | None = None  # the sentence the timeline and the API show
    closure: ClosureReason | None = None  # what rules read (None unless closed)
    trace: str | None = None
    # The newest ledger version of the invoice applied (snapshots, allocations, disputes): older facts are ignored.
    ledger_version: int = 0
    notes: list[Note] = field(default_factory=list)
    # Collected like notes (not stored with the case): the batch turns them into dunning.step.held events.
    holds: list[StepHold] = field(default_factory=list)

    def note(self, kind: str, reason: str, step: str | None = None, **detail: Any) -> None:
        self.notes.append(Note(kind, reason, step, detail))

    @property
    def balance(self) -> Decimal:
        # Decimal(int).scaleb(-units) already has the currency's exponent: no quantize needed.
        return Decimal(self.balance_minor).scaleb(-minor_units(self.currency))

    @property
    def paused(self) -> bool:
        return bool(self.pause_reasons)

    def nominal_day(self, step: Step) -> date:
        assert self.due_date is not None
        return self.due_date + timedelta(days=step.offset_days + self.shift_days)

    def clear_timer(self) -> None:
        self.next_at = None


def take_ledger_version(case: Case, version: int) -> bool:
    """Whether a ledger fact at `version` is news for the case (then the case remembers it); an older one — a
    redelivered or replayed event after a newer one, e.g. an invoice.updated snapshot replayed from a dead-letter
    topic after the payment that settled the invoice — must change nothing (dunning_events.events.supersedes)."""
    if not supersedes(version, case.ledger_version):
        return False
    case.ledger_version = max(case.ledger_version, version)
    return True


def window(policy: Policy, debtor: Debtor) -> ContactWindow:
    key = (debtor.time_zone, debtor.country)
    found = policy.windows.get(key)
    if found is None:
        found = policy.windows[key] = ContactWindow.for_debtor(policy.doc, debtor.time_zone, debtor.country)
    return found


def _iso(at: datetime) -> str:
    # Equal instants in other zones compare equal, so only UTC ones (all the engine computes) are cached.
    return _iso_utc(at) if at.tzinfo is UTC else at.isoformat()


@lru_cache(maxsize=4096)  # planned moments recur across thousands of cases (one per window and day)
def _iso_utc(at: datetime) -> str:
    return at.isoformat()


# ---------------------------------------------------------------- which policy


def applies(doc: PolicyDocument, debtor: Debtor, case: Case) -> bool:
    a = doc.applies_to
    if a.segments and debtor.segment not in a.segments:
        return False
    if a.tags_any and not debtor.tags.intersection(a.tags_any):
        return False
    if a.tags_none and debtor.tags.intersection(a.tags_none):
        return False
    if a.currencies and case.currency not in a.currencies:
        return False
    if a.amount.min is not None and case.balance < a.amount.min:
        return False
    if a.amount.max is not None and case.balance > a.amount.max:
        return False
    late_elsewhere = debtor.late_invoice_count - (1 if case.went_late else 0)
    if a.late_payer == "first_time" and late_elsewhere > 0:
        return False
    if a.late_payer == "chronic" and late_elsewhere < a.chronic_late_after:
        return False
    chronic_breaker = debtor.broken_promise_count >= a.chronic_promise_breaker_after
    if a.promise_breaker == "chronic" and not chronic_breaker:
        return False
    return not (a.promise_breaker == "not_chronic" and chronic_breaker)


def resolve_policy(
    debtor: Debtor, case: Case, policies: dict[str, Policy], assignments: dict[tuple[str, str], str]
) -> tuple[Policy, str]:
    """The customer's assignment, else their segment's, else the first policy (by priority) whose
    applicability matches, else the default."""
    pid = assignments.get(("customer", debtor.customer_id))
    if pid in policies:
        return policies[pid], "assigned to the customer"
    if debtor.segment is not None:
        pid = assignments.get(("segment", debtor.segment))
        if pid in policies:
            return policies[pid], f"assigned to segment {debtor.segment}"
    for p in sorted(policies.values(), key=lambda p: (p.doc.priority, p.id)):
        if applies(p.doc, debtor, case):
            return p, "its applicability matches"
    return policies["default"], "the default policy"


# ---------------------------------------------------------------- starting, planning


def no_dunning_reason(case: Case, policy: Policy) -> str | None:
    if case.due_date is None:
        return "no dunning: the invoice has no due date"
    if case.balance_minor <= 0:
        return "no dunning: the balance is zero"
    minimum = policy.minimum_minor(case.currency)
    if case.balance_minor < minimum:
        return (
            f"no dunning: the balance {case.balance} {case.currency} is below the policy minimum "
            f"{from_minor(minimum, case.currency)} {case.currency}"
        )
    return None


def _bind(case: Case, policy: Policy) -> None:
    case.policy_id = policy.id
    case.policy_version = policy.version


def schedule(
    case: Case, policy: Policy, w: ContactWindow, step: Step, not_before: datetime, why: str = "", **detail: Any
) -> None:
    at = w.plan(case.nominal_day(step), not_before)
    case.next_step = step.name
    case.planned_at = at
    case.next_at = None if case.paused else at
    _bind(case, policy)
    iso = _iso(at)
    reason = f"{step.name} scheduled for {iso} ({why})" if why else f"{step.name} scheduled for {iso}"
    case.notes.append(
        Note("scheduled", reason, step.name,
             {"planned_at": iso, "policy": policy.id, "policy_version": policy.version, **detail})
    )  # fmt: skip


def _exhausted(case: Case, policy: Policy) -> None:
    case.next_step = None
    case.planned_at = None
    case.next_at = None
    _bind(case, policy)


def start(case: Case, debtor: Debtor, policy: Policy, now: datetime, why: str = "") -> None:
    """A new case, or one that revives: schedule the step that fits the invoice's age.

    An invoice entering dunning after some of its steps' days (the day a company connects its ERP, an import
    of old invoices, a late sync) is caught up by the policy's `catch_up` rule (see `catch_up`); the steps
    passed over are skipped and logged, never sent in a burst.
    """
    _bind(case, policy)
    if debtor.erased:
        # A new or reopened invoice of an erased customer: recorded (the money facts), never dunned.
        close(case, ClosureReason.ERASED, erasure="permanent")
        return
    reason = no_dunning_reason(case, policy)
    if reason is not None:
        case.status = "idle"
        case.next_step = None
        case.clear_timer()
        case.note("skipped", reason)
        return
    case.status = "open"
    remaining = policy.remaining_steps(case.done_steps, case.last_offset)
    if not remaining:
        _exhausted(case, policy)
        return
    w = window(policy, debtor)
    today = w.local_date(now)
    why = why or f"policy {policy.id} v{policy.version}"
    step: Step | None = remaining[0]
    detail: dict[str, Any] = {}
    if case.nominal_day(remaining[0]) < today:
        choice = catch_up(case, policy, remaining, today, "when dunning started")
        step, detail = choice.step, choice.detail
        why = f"{why}; {choice.why}"
    if step is None:
        _exhausted(case, policy)
        case.note("skipped", f"no further step in policy {policy.id} v{policy.version} ({why})")
        return
    schedule(case, policy, w, step, now, why, **detail)
    if case.paused:
        case.note("paused", f"paused: {pause_text(case.pause_reasons)}", step.name)


_START_WITH_TEXT = {
    "latest_passed_step": "the step that matches the invoice's age",
    "first_overdue_step": "the first step after the due date",
    "skip_passed_steps": "none of the steps whose day has passed",
}


@dataclass(frozen=True)
class CatchUpChoice:
    step: Step | None  # what the debtor gets next (None: nothing is left)
    why: str  # for the timeline
    detail: dict[str, Any]


def catch_up(
    case: Case, policy: Policy, remaining: tuple[Step, ...], today: date, when: str, *, late: bool = False
) -> CatchUpChoice:
    """Steps whose days have passed (first sight of an old invoice, or a long downtime): choose the one the
    debtor gets now by `catch_up.start_with` and skip (and log) the ones before it. A hand-off to collections
    is never the first thing that happens while no reminder has reached the debtor (unless
    `hand_off_requires_reminder: false`): it comes after one.
    """
    rule = policy.doc.catch_up.start_with
    overdue = case.due_date is not None and today > case.due_date
    reached = [s for s in remaining if case.nominal_day(s) <= today]
    # A reminder before the due date is never sent after it.
    eligible = [s for s in reached if not (overdue and s.offset_days < 0)]
    held_back: list[Step] = []
    if rule == "skip_passed_steps":
        eligible = [s for s in eligible if case.nominal_day(s) == today]  # today's own step has not passed
    elif case.reminded_at is None and policy.doc.hand_off_requires_reminder:
        held_back = [s for s in eligible if s.hands_off]
        eligible = [s for s in eligible if not s.hands_off]
    if rule == "first_overdue_step" and any(s.offset_days > 0 for s in eligible):
        eligible = [next(s for s in eligible if s.offset_days > 0)]
    chosen = eligible[-1] if eligible else None
    passed_over = reached[: reached.index(chosen)] if chosen is not None else [s for s in reached if s not in held_back]
    for skipped in passed_over:
        if late and chosen is not None:
            text = f"{skipped.name}: superseded by {chosen.name}, which is due too (reached late, {when})"
        elif overdue and skipped.offset_days < 0:
            text = f"{skipped.name}: a reminder before the due date is never sent after it ({case.due_date})"
        else:
            text = f"{skipped.name}: its day ({case.nominal_day(skipped)}) had passed {when}"
        case.note("skipped", text, skipped.name)
        _mark_done(case, skipped)
    age = f"{(today - case.due_date).days} days after the due date" if case.due_date is not None else "no due date"
    why = f"catching up {when}, {age}: the policy starts with {_START_WITH_TEXT[rule]} (catch_up.start_with: {rule})"
    detail: dict[str, Any] = {"catch_up": rule}
    if held_back:
        why += (
            f"; {held_back[-1].name} hands off to collections only after a reminder has reached the debtor "
            "(hand_off_requires_reminder)"
        )
        detail["held_back"] = [s.name for s in held_back]
    if chosen is None:
        later = policy.remaining_steps(case.done_steps, case.last_offset)
        return CatchUpChoice(later[0] if later else None, why, detail)
    # Steps after the chosen one whose days have passed too (the rule started earlier than the invoice's age,
    # or held a hand-off back) would follow in quick succession: anchor the schedule on the chosen step instead,
    # so they keep the spacing the policy means. Otherwise the schedule stays on the invoice's own dates.
    after = remaining[remaining.index(chosen) + 1 :]
    shift = (today - case.nominal_day(chosen)).days
    if after and case.nominal_day(after[0]) <= today and shift > 0:
        case.shift_days += shift
        why += f"; the steps after it keep their spacing ({shift} days later than the invoice's dates)"
        detail["shift_days"] = shift
    return CatchUpChoice(chosen, why, detail)


def _mark_done(case: Case, step: Step) -> None:
    if step.name not in case.done_steps:
        case.done_steps.append(step.name)
    case.last_offset = step.offset_days if case.last_offset is None else max(case.last_offset, step.offset_days)


def pending_step(case: Case, policy: Policy) -> Step | None:
    """The step the case waits for in this policy version (by name; else the next one not yet handled)."""
    if case.next_step is not None:
        step = policy.step_by_name.get(case.next_step)
        if (
            step is not None
            and step.name not in case.done_steps
            and (case.last_offset is None or step.offset_days > case.last_offset)
        ):
            return step
    remaining = policy.remaining_steps(case.done_steps, case.last_offset)
    return remaining[0] if remaining else None


def _not_before(case: Case, policy: Policy, now: datetime) -> datetime:
    if case.last_sent_at is None:
        return now
    return max(now, case.last_sent_at + timedelta(days=policy.doc.min_days_between_steps))


def replan(case: Case, debtor: Debtor, policy: Policy, now: datetime, why: str) -> None:
    """Re-derive the pending step and its moment (new policy version, new assignment, new due date, new
    time zone). Steps already sent are never sent again: a version applies from the case's next step."""
    case.replan = False
    if case.status != "open":
        _bind(case, policy)
        return
    step = pending_step(case, policy)
    if step is None:
        changed = case.next_step is not None
        _exhausted(case, policy)
        if changed:
            case.note("skipped", f"no further step in policy {policy.id} v{policy.version} ({why})")
        return
    w = window(policy, debtor)
    at = w.plan(case.nominal_day(step), _not_before(case, policy, now))
    same = (step.name, at, policy.id, policy.version) == (
        case.next_step, case.planned_at, case.policy_id, case.policy_version,
    )  # fmt: skip
    if not same:
        schedule(case, policy, w, step, _not_before(case, policy, now), why)


def replan_held(
    case: Case, debtor: Debtor, policy: Policy, now: datetime, deliver_from: datetime, step: str | None
) -> None:
    """The notifier held a sent step outside the contact window; it goes out at `deliver_from` instead. The
    timeline says so, and the case's next step keeps its spacing after that new moment."""
    w = window(policy, debtor)
    case.note("scheduled", f"{step or 'the held step'} re-planned for {_iso(deliver_from)}, the next moment the "
              f"debtor may be contacted ({w.describe()})", step, planned_at=_iso(deliver_from))  # fmt: skip
    if case.last_sent_at is not None and deliver_from > case.last_sent_at:
        case.last_sent_at = deliver_from
        if case.status == "open" and not case.paused and case.next_step is not None:
            replan(case, debtor, policy, now, f"{step or 'the held step'} goes out later")


# ---------------------------------------------------------------- pauses


def set_pause(
    case: Case,
    debtor: Debtor,
    policy: Policy,
    now: datetime,
    *,
    add: tuple[str, ...] = (),
    remove: tuple[str, ...] = (),
    cause: str = "",
) -> None:
    old = set(case.pause_reasons)
    new = (old | set(add)) - set(remove)
    if new == old:
        return
    case.pause_reasons = sorted(new)
    if case.status != "open":
        return  # the flags are kept so a revived case starts paused
    suffix = f" ({cause})" if cause else ""
    if not old:
        case.clear_timer()
        case.note("paused", f"paused: {pause_text(new)}{suffix}", case.next_step, reasons=sorted(new))
    elif not new:
        resume(case, debtor, policy, now, f"{pause_text(old)} no longer" + suffix)
    elif new - old:
        case.note("paused", f"paused: also {pause_text(new - old)}{suffix}", case.next_step, reasons=sorted(new))
    else:
        case.note(
            "paused",
            f"still paused: {pause_text(new)} ({pause_text(old - new)} ended{suffix.replace(' (', ': ').rstrip(')')})",
            case.next_step,
            reasons=sorted(new),
        )


def resume(case: Case, debtor: Debtor, policy: Policy, now: datetime, why: str) -> None:
    """Continue where it was: the pending step at its own moment if that is still ahead, else at the next
    allowed moment; the rest of the schedule keeps its spacing (it moves by the days the pause cost)."""
    step = pending_step(case, policy)
    if step is None:
        _exhausted(case, policy)
        case.note("resumed", f"resumed: {why}; no further step")
        return
    w = window(policy, debtor)
    today = w.local_date(now)
    if case.due_date is not None and case.nominal_day(step) < today:
        case.shift_days += (today - case.nominal_day(step)).days
    at = w.plan(case.nominal_day(step), _not_before(case, policy, now))
    case.next_step = step.name
    case.planned_at = at
    case.next_at = at
    _bind(case, policy)
    case.note("resumed", f"resumed: {why}; {step.name} at {_iso(at)}", step.name, planned_at=_iso(at))


def arrangement_broken(case: Case, *, promise_id: str | None = None, plan: bool = False) -> None:
    """A promise was broken (`promise_id`) or the payment plan defaulted (`plan`): it pauses the case no longer.
    Another promise that still stands keeps its pause."""
    if promise_id is not None and promise_id in case.promise_ids:
        case.promise_ids.remove(promise_id)
    if plan:
        case.plan_id = None
        if "payment_plan" in case.pause_reasons:
            case.pause_reasons.remove("payment_plan")
    if not case.promise_ids and "promise" in case.pause_reasons:
        case.pause_reasons.remove("promise")


def escalate(case: Case, debtor: Debtor, policy: Policy, now: datetime, rule: ReEscalation, why: str) -> None:
    """After a broken promise or a defaulted plan: jump to the next firmer step, `delay_business_days`
    business days later, inside the contact window."""
    if case.status != "open":
        return
    if rule.action == "resume":
        if not case.paused:
            resume(case, debtor, policy, now, why)
        return
    remaining = policy.remaining_steps(case.done_steps, case.last_offset)
    if not remaining:
        _exhausted(case, policy)
        case.note("escalated", f"{why}: no further step to escalate to")
        return
    base = TONE_RANK[case.last_tone] if case.last_tone else TONE_RANK[remaining[0].tone]
    target = next((s for s in remaining if TONE_RANK[s.tone] > base), remaining[-1])
    for skipped in remaining[: next(i for i, s in enumerate(remaining) if s is target)]:
        case.note("skipped", f"{skipped.name}: passed over by escalation ({why})", skipped.name)
        _mark_done(case, skipped)
    w = window(policy, debtor)
    day = w.add_business_days(w.local_date(now), rule.delay_business_days)
    if case.due_date is not None and case.nominal_day(target) < day:
        case.shift_days += (day - case.nominal_day(target)).days
    at = w.plan(day, now)
    case.next_step = target.name
    case.planned_at = at
    case.next_at = None if case.paused else at
    _bind(case, policy)
    case.note("escalated", f"{why}: escalating to {target.name} at {_iso(at)}", target.name, planned_at=_iso(at),
              tone=target.tone)  # fmt: skip
    if case.paused:
        case.note("paused", f"still paused: {pause_text(case.pause_reasons)}", target.name)


# ---------------------------------------------------------------- closing


def close(case: Case, closure: ClosureReason, kind: str = "cancelled", **detail: Any) -> str | None:
    """Stop dunning for good (paid, void, written off, credited to zero, personal data erased). Returns the
    pending step that is cancelled, if any."""
    if case.status == "closed":
        return None
    cancelled = case.next_step if case.status == "open" else None
    case.status = "closed"
    case.closure = closure
    case.closed_reason = CLOSED_TEXT[closure]
    case.clear_timer()
    case.note(kind, case.closed_reason, cancelled, **detail)
    case.next_step = None
    return cancelled


def close_on_arrival(case: Case, policy: Policy, closure: ClosureReason) -> None:
    """An invoice that is already void or written off when the engine first sees it: recorded, never dunned."""
    case.status = "closed"
    case.closure = closure
    case.closed_reason = f"no dunning: the invoice is {_LEDGER_TEXT[closure]}"
    case.note("skipped", case.closed_reason)
    _bind(case, policy)


def reopen(case: Case, debtor: Debtor, policy: Policy, now: datetime, why: str) -> None:
    """A closed (or idle) invoice is back in dunning (see closure.reopens): plan it as a case that revives."""
    case.status, case.closure, case.closed_reason = "open", None, None
    start(case, debtor, policy, now, why)


# ---------------------------------------------------------------- personal data erased (GDPR Art. 17)

# The closed_reason of every case of an erased customer (ClosureReason.ERASED), and the stop the engine never
# undoes: no later fact reopens it (closure.reopens), and `start` closes any new or reopened case of an erased
# debtor with it.
ERASED_STOP = "personal data erased: dunning stopped for good"

# What the ledger says the invoice became, in the timeline's words.
_LEDGER_TEXT = {
    ClosureReason.PAID: "paid",
    ClosureReason.CREDITED: "credited to zero",
    ClosureReason.VOIDED: "voided",
    ClosureReason.WRITTEN_OFF: "written off",
}

# The sentence a case closed for each reason shows (Case.closed_reason), and the reason of its cancellations.
CLOSED_TEXT: dict[ClosureReason, str] = {
    **{closure: f"cancelled: the invoice was {text}" for closure, text in _LEDGER_TEXT.items()},
    ClosureReason.HANDED_OFF: "handed off to collections",
    ClosureReason.ERASED: ERASED_STOP,
}

# Timeline texts that quote free text from outside (an ERP's dispute reason, an operator's block reason): on
# erasure everything after the marker is cut, the decision itself (kind, step, time) stays explained.
FREE_TEXT_MARKERS = ("dispute opened: ", "dispute resolved: ", "dunning block set: ")
REDACTED = "[erased]"


def redact_free_text(reason: str) -> str:
    """The timeline reason without the free text it quotes (unchanged when it quotes none)."""
    cut = [reason.find(m) + len(m) for m in FREE_TEXT_MARKERS if m in reason]
    if not cut:
        return reason
    return reason[: min(cut)] + REDACTED


def erase(case: Case, erasure_reason: str) -> str | None:
    """customer.erased: close the case for good (whatever its state) and drop the operator's free text.
    Returns the pending step that is cancelled, if any."""
    case.block_reason = None
    case.block_until = None
    return close(case, ClosureReason.ERASED, erasure=erasure_reason)


def make_idle(case: Case, reason: str) -> str | None:
    """No dunning for now (e.g. below the minimum after a partial payment); a balance increase revives it."""
    if case.status != "open":
        return None
    cancelled = case.next_step
    case.status = "idle"
    case.clear_timer()
    case.note("cancelled", reason, cancelled)
    return cancelled


# ---------------------------------------------------------------- firing


def _no_conversation(case: Case) -> datetime | None:
    return None


@dataclass
class CapCheck:
    """Contact attempts already made, as counted from notification.sent and the calls collectors logged."""

    attempts: Callable[[Case, ContactCap], tuple[int, datetime | None]]  # (count in window, oldest in window)
    # The latest logged conversation about the case's debt whose 7-day hold still runs (None: no hold).
    conversation: Callable[[Case], datetime | None] = _no_conversation


@dataclass(slots=True)
class Firing:
    case: Case
    step: Step
    policy: Policy
    channels: list[str]
    dropped: dict[str, str]
    late_by: timedelta | None
    deliver_until: datetime
    deliver_from: datetime
    caught_up: str | None = None  # why this step (the catch-up rule chose it), for the timeline


def decide(
    case: Case, debtor: Debtor, policy: Policy, now: datetime, stale_reason: str | None, caps: CapCheck
) -> Firing | None:
    """The case's timer fired: send the pending step, or explain why not and what happens instead."""
    if debtor.erased and case.status != "closed":
        close(case, ClosureReason.ERASED, erasure="permanent")
        return None
    if case.status != "open" or case.paused:
        case.clear_timer()
        return None
    if case.replan or case.policy_version != policy.version or case.policy_id != policy.id:
        replan(case, debtor, policy, now, f"policy {policy.id} v{policy.version}")
        if case.next_at is None or case.next_at > now:
            return None
    if stale_reason is not None:
        set_pause(case, debtor, policy, now, add=("stale_ledger",), cause=stale_reason)
        return None
    reason = no_dunning_reason(case, policy)
    if reason is not None:
        make_idle(case, reason)
        return None
    step = pending_step(case, policy)
    if step is None:
        _exhausted(case, policy)
        return None
    if step.name != case.next_step:
        replan(case, debtor, policy, now, "the pending step is no longer in the policy")
        return None
    w = window(policy, debtor)
    late_by = None
    caught_up: CatchUpChoice | None = None
    if case.planned_at is not None and now - case.planned_at > timedelta(minutes=policy.doc.late_grace_minutes):
        late_by = now - case.planned_at
    if late_by is not None and late_by > timedelta(hours=policy.doc.catch_up.after_downtime_hours):
        # The engine was down (or far behind) while this step's day passed: the first-sight rule decides.
        today = w.local_date(now)
        remaining = policy.remaining_steps(case.done_steps, case.last_offset)
        caught_up = catch_up(
            case, policy, remaining, today, f"while the engine was {_fmt_delta(late_by)} behind", late=True
        )
        if caught_up.step is None:
            _exhausted(case, policy)
            case.note("skipped", f"no further step in policy {policy.id} v{policy.version} ({caught_up.why})")
            return None
        step = caught_up.step
        if case.nominal_day(step) > today:
            schedule(case, policy, w, step, now, caught_up.why, **caught_up.detail)
            return None
        # Late by the step's own moment (before the schedule was anchored on today), as the event reports it.
        own_day = case.nominal_day(step) - timedelta(days=caught_up.detail.get("shift_days", 0))
        case.next_step = step.name
        case.planned_at = w.plan(own_day, _EPOCH)
        late_by = now - case.planned_at if now - case.planned_at > timedelta(0) else None
    if step.offset_days < 0 and case.due_date is not None and w.local_date(now) > case.due_date:
        case.note("skipped", f"{step.name}: a reminder before the due date is never sent after it "
                  f"({case.due_date})", step.name)  # fmt: skip
        _mark_done(case, step)
        _schedule_next(case, debtor, policy, w, now)
        return None
    if late_by is not None and caught_up is None and policy.doc.late_step == "skip":
        case.note(
            "skipped",
            f"{step.name}: planned for {_iso(case.planned_at)}, reached {_fmt_delta(late_by)} late "  # type: ignore[arg-type]
            "(the engine was not running or behind); the policy says late_step: skip",
            step.name, planned_at=_iso(case.planned_at),  # type: ignore[arg-type]
        )  # fmt: skip
        _mark_done(case, step)
        _schedule_next(case, debtor, policy, w, now)
        return None
    if step.hands_off and case.reminded_at is None and policy.doc.hand_off_requires_reminder:
        # Never hand a debtor over to collections before one reminder has reached them: wait for it.
        case.clear_timer()
        if not case.awaiting_reminder:
            case.awaiting_reminder = True
            case.note("paused", f"{step.name} waits: no reminder has reached the debtor yet, and the policy hands "
                      "off to collections only after one (hand_off_requires_reminder)", step.name)  # fmt: skip
        return None
    if not allowed_at(w, now):  # the same instant for a whole batch: computed once per window
        at = w.next_allowed(now)
        case.next_at = at
        if late_by is None:
            case.planned_at = at
        case.note("scheduled", f"{step.name} moved to {_iso(at)}: outside the debtor's contact window "
                  f"({w.describe()})", step.name, planned_at=_iso(at))  # fmt: skip
        return None
    channels: list[str] = []
    dropped: dict[str, str] = {}
    held: list[ChannelHold] = []
    cap_frees: list[datetime] = []
    for channel in step.channels:
        hold, frees_at = channel_hold(case, debtor, policy, channel, now, caps)
        if frees_at is not None:
            cap_frees.append(frees_at)
        if hold is None:
            channels.append(channel)
        else:
            dropped[channel] = hold.reason
            held.append(hold)
    if not channels:
        if cap_frees:
            at = w.next_allowed(max(cap_frees))
            case.next_at = at
            case.note("scheduled", f"{step.name} moved to {_iso(at)}: " + "; ".join(dropped.values()), step.name,
                      planned_at=_iso(at), dropped=dropped)  # fmt: skip
            case.holds.append(StepHold(step.name, policy.id, tuple(held), sent=False, moved_to=at))
            return None
        case.note("skipped", f"{step.name}: no allowed channel: " + "; ".join(dropped.values()), step.name,
                  dropped=dropped)  # fmt: skip
        case.holds.append(StepHold(step.name, policy.id, tuple(held), sent=False, moved_to=None))
        _mark_done(case, step)
        _schedule_next(case, debtor, policy, w, now)
        return None
    if held:
        case.holds.append(StepHold(step.name, policy.id, tuple(held), sent=True, moved_to=None))
    return Firing(case, step, policy, channels, dropped, late_by, w.window_end(now), w.window_start(now),
                  caught_up.why if caught_up is not None else None)  # fmt: skip


def channel_hold(
    case: Case, debtor: Debtor, policy: Policy, channel: str, now: datetime, caps: CapCheck
) -> tuple[ChannelHold | None, datetime | None]:
    """May the debtor be contacted about the case on `channel` now (consent, Reg F's conversation hold, the
    policy's contact caps)? None, or the hold naming its rule; and, for a hold that ends by itself (a cap, a
    conversation), the instant it ends. The timer asks it for each channel of a due step; a collector's one-off
    reminder (service_layer.reminders) asks it for the channel chosen."""
    why_not = debtor.may_contact_on(channel)
    if why_not is not None:
        return ChannelHold(channel, CONSENT_RULE, why_not), None
    if channel in CALL_CHANNELS:
        talked_at = caps.conversation(case)
        until = no_call_until("conversation", talked_at) if talked_at is not None else None
        if talked_at is not None and until is not None and until > now:
            return ChannelHold(channel, CONVERSATION_RULE, hold_reason(channel, talked_at, until)), until
    for cap in policy.cap_by_channel.get(channel, ()):
        count, oldest = caps.attempts(case, cap)
        if count >= cap.max_attempts:
            about = "this debt" if cap.per == "debt" else "this debtor"
            why_not = (f"{channel}: contact cap reached ({count} attempts about {about} in the last "
                       f"{cap.per_days} days, at most {cap.max_attempts})")  # fmt: skip
            frees_at = oldest + timedelta(days=cap.per_days) if oldest is not None else None
            return ChannelHold(channel, CAP_RULE, why_not), frees_at
    return None, None


def mark_sent(
    firing: Firing, debtor: Debtor, now: datetime, step_id: str, fees: list[dict[str, Any]], waived: list[str]
) -> None:
    case, step, policy = firing.case, firing.step, firing.policy
    late = firing.late_by
    reason = f"{step.name} due: sent to the notifier"
    if late is not None:
        reason += (
            f", {_fmt_delta(late)} late (planned for {_iso(case.planned_at)}; the engine was not running or behind)"  # type: ignore[arg-type]
        )
    detail: dict[str, Any] = {"step_id": step_id, "channels": firing.channels, "tone": step.tone,
                              "template_id": step.template_id}  # fmt: skip
    if firing.dropped:
        detail["dropped"] = firing.dropped
    if firing.caught_up:
        detail["catch_up"] = firing.caught_up
    if fees:
        detail["fees"] = fees
    if waived:
        detail["fees_waived"] = waived
    if late is not None:
        detail["late"] = True
    case.notes.append(Note("sent", reason, step.name, detail))
    _mark_done(case, step)
    case.last_tone = step.tone
    case.last_sent_at = now
    case.last_step_id = step_id
    if step.offset_days > 0:
        case.in_default = True
    for action in step.actions:
        text = _ACTION_TEXT[action]
        case.note("escalated", f"{step.name}: {text}", step.name, action=action)
    if "hand_off_to_collections" in step.actions:
        case.status = "closed"
        case.closure = ClosureReason.HANDED_OFF
        case.closed_reason = CLOSED_TEXT[ClosureReason.HANDED_OFF]
        case.next_step = None
        case.clear_timer()
        return
    _schedule_next(case, debtor, policy, window(policy, debtor), now)


_ACTION_TEXT = {
    "hand_off_to_collections": "handed off to collections",
    "credit_hold": "credit hold requested for the account",
    "recommend_write_off": "write-off recommended",
}


def _schedule_next(case: Case, debtor: Debtor, policy: Policy, w: ContactWindow, now: datetime) -> None:
    remaining = policy.remaining_steps(case.done_steps, case.last_offset)
    if not remaining:
        _exhausted(case, policy)
        case.note("skipped", f"no further step in policy {policy.id} v{policy.version}")
        return
    schedule(case, policy, w, remaining[0], _not_before(case, policy, now))


def _fmt_delta(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes and not days else ""]
    return " ".join(p for p in parts if p) or "0m"
