"""A one-off reminder now (a collector's "send a reminder now"), decided by the rules the durable timer applies to a
due step, or refused naming the rule.

The rules are the timer's own functions, not copies: the policy each case is bound to (firing.bind_policies), a
paused or stopped case (rules.no_dunning_reason, the pause reasons), a stale ledger (freshness.stale_tenants), the
debtor's contact window in their time zone and calendar (calendar.allowed_at, ContactWindow.next_allowed), and for
the channel: consent and opt-outs, Reg F's conversation hold and the policy's contact caps (rules.channel_hold over
the attempts firing.cap_check loads). Allowed, one transaction writes the dunning.step.due the notifier delivers as
it delivers a scheduled step (outbox) and a `sent` timeline entry per invoice naming the person; refused, nothing
is written. The customer's claim lock is taken first (as the call log does), so a timer batch deciding the same
customer finishes before this decision reads the caps, and the next batch sees this reminder.

A one-off is no step of the policy: the case's schedule stays as it was (its next step is neither consumed nor
moved), no fee is charged and no action (hand-off, credit hold) runs. It borrows the template and, unless asked
otherwise, the channel of the case's current step. The contact caps count it as they count every step: from the
notifier's notification.sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.money import minor_units
from dunning_events.outbox import OutboxWriter
from dunning_kit.actor import Actor
from policy_engine.adapters import repository as repo
from policy_engine.adapters.step_events import OutboxRow, StepInvoiceRow, step_due_row
from policy_engine.domain import cases as rules
from policy_engine.domain.calendar import allowed_at, load_holidays, local_day, missing_holidays
from policy_engine.domain.cases import Case, Debtor
from policy_engine.domain.fees import days_overdue
from policy_engine.domain.policy import Policy, Step
from policy_engine.domain.step_ids import step_id
from policy_engine.service_layer.firing import bind_policies, cap_check
from policy_engine.service_layer.freshness import stale_tenants
from policy_engine.service_layer.handlers import EngineConfig
from policy_engine.service_layer.policy_book import PolicyBook
from policy_engine.service_layer.queries import customer_known

# The channels a collector may send a one-off reminder on: a voice step is an automated call and a task is work for
# a person, neither is "a reminder now".
REMINDER_CHANNELS = ("email", "sms", "letter")
# The step name the event and the timeline give a one-off (kept apart from the policy's steps in every figure).
ONE_OFF_STEP = "one_off_reminder"

# The rules a refusal names (errors[].field of the 409), besides the channel's (rules.CONSENT_RULE, CAP_RULE,
# CONVERSATION_RULE).
ERASED_RULE = "erased"
CLOSED_RULE = "closed"
NOT_DUNNED_RULE = "not_dunned"
PAUSED_RULE = "paused"
STALE_RULE = "stale_ledger"
WINDOW_RULE = "contact_window"


class UnknownCustomer(LookupError):
    pass


class ReminderInvalid(ValueError):
    """The request cannot be decided as asked: (field, reason) pairs (422), nothing was written."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in errors))
        self.errors = errors


class ReminderRefused(Exception):
    """A contact rule refuses the reminder now (409): the rule, why, and for a rule that ends by itself the
    earliest moment it allows one."""

    def __init__(self, rule: str, reason: str, not_before: datetime | None = None) -> None:
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason
        self.not_before = not_before


@dataclass(frozen=True)
class SentReminder:
    step_id: str
    customer_id: str
    channel: str
    template_id: str
    invoice_ids: list[str]
    sent_at: datetime
    sent_by: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id, "customer_id": self.customer_id, "channel": self.channel,
            "template_id": self.template_id, "invoice_ids": self.invoice_ids, "sent_at": self.sent_at.isoformat(),
            "sent_by": self.sent_by,
        }  # fmt: skip


async def _cases(apg: asyncpg.Connection, tenant: str, customer: str, asked: Sequence[str] | None) -> list[Case]:
    """The cases the reminder is about, locked: the ones asked (each must be the customer's), or every open and
    unpaused one of the customer. A case that may not be reminded is refused by `_refusal`, not left out."""
    if asked is None:
        every = await repo.load_where(apg, "tenant_id = $1 AND customer_id = $2", tenant, customer)
        chosen = [c for c in every if c.status == "open" and not c.paused]
        if chosen:
            return chosen
        # Nothing to remind: the refusal names why (paused before stopped: a pause ends by itself).
        return [c for c in every if c.status == "open"] or every
    if not asked:
        raise ReminderInvalid([("invoice_ids", "must name at least one invoice (leave it out for all the open ones)")])
    found = await repo.load_cases(apg, tenant, asked)
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, invoice_id in enumerate(asked):
        case = found.get(invoice_id)
        if invoice_id in seen:
            errors.append((f"invoice_ids[{i}]", f"invoice {invoice_id} is listed twice"))
        elif case is None:
            errors.append((f"invoice_ids[{i}]", f"unknown invoice {invoice_id}"))
        elif case.customer_id != customer:
            errors.append((f"invoice_ids[{i}]", f"invoice {invoice_id} is not the customer's ({customer})"))
        seen.add(invoice_id)
    if errors:
        raise ReminderInvalid(errors)
    return [found[i] for i in dict.fromkeys(asked)]


def _case_refusal(case: Case, policy: Policy) -> ReminderRefused | None:
    """What stops reminding this case now, as the timer would find it (rules.decide's order)."""
    if case.status == "closed":
        return ReminderRefused(CLOSED_RULE, f"invoice {case.number}: {case.closed_reason or 'dunning has stopped'}")
    if case.paused:
        return ReminderRefused(PAUSED_RULE, f"invoice {case.number} is paused: {rules.pause_text(case.pause_reasons)}")
    why = rules.no_dunning_reason(case, policy)
    if case.status != "open" or why is not None:
        return ReminderRefused(NOT_DUNNED_RULE, f"invoice {case.number}: {why or 'not under dunning'}")
    return None


def _current_step(case: Case, policy: Policy) -> Step:
    """The step whose channel and template a one-off borrows: the one the case waits for, else its last one."""
    return rules.pending_step(case, policy) or policy.steps[-1]


def _channel(step: Step, asked: str | None) -> str:
    if asked is not None:
        return asked
    for channel in step.channels:
        if channel in REMINDER_CHANNELS:
            return channel
    raise ReminderInvalid([("channel", f"the current step {step.name} uses {', '.join(step.channels)}: choose one "
                                       f"of {', '.join(REMINDER_CHANNELS)}")])  # fmt: skip


async def remind_now(
    session: AsyncSession, outbox: OutboxWriter, config: EngineConfig, book: PolicyBook, tenant: str, customer: str,
    *, invoice_ids: Sequence[str] | None, channel: str | None, template: str | None, now: datetime,
    actor: Actor | None = None,
) -> SentReminder:  # fmt: skip
    """Decide and write the reminder in the caller's transaction; raises UnknownCustomer, ReminderInvalid or
    ReminderRefused (before writing anything)."""
    apg = await repo.driver(session)
    if not await customer_known(apg, tenant, customer):
        raise UnknownCustomer(customer)
    await repo.hold_customer(apg, tenant, customer)
    cases = await _cases(apg, tenant, customer, invoice_ids)
    if not cases:
        raise ReminderRefused(NOT_DUNNED_RULE, f"customer {customer} has no invoice under dunning")
    if len({c.currency for c in cases}) > 1:
        raise ReminderInvalid([("invoice_ids", "the invoices are in more than one currency "
                                               f"({', '.join(sorted({c.currency for c in cases}))}): "
                                               "one reminder names one currency, choose its invoices")])  # fmt: skip
    debtor = (await repo.load_debtors(apg, [(tenant, customer)]))[(tenant, customer)]
    if debtor.erased:
        raise ReminderRefused(ERASED_RULE, "the customer's personal data was erased: never contacted again")
    policies = await book.current(apg, [tenant])
    bound = await bind_policies(apg, cases, {(tenant, customer): debtor}, policies)
    for case in cases:
        refusal = _case_refusal(case, bound[id(case)])
        if refusal is not None:
            raise refusal
    first = cases[0]
    policy = bound[id(first)]
    step = _current_step(first, policy)
    chosen = _channel(step, channel)
    stale = (await stale_tenants(apg, [tenant], now, config.stale_after)).get(tenant)
    if stale is not None:
        raise ReminderRefused(STALE_RULE, f"{rules.PAUSE_TEXT['stale_ledger']}: {stale}")
    await _load_calendar(debtor, now)
    window = rules.window(policy, debtor)
    if not allowed_at(window, now):
        raise ReminderRefused(WINDOW_RULE, f"outside the debtor's contact window ({window.describe()})",
                              window.next_allowed(now))  # fmt: skip
    caps = await cap_check(apg, cases, bound, now, chosen)
    for case in cases:
        hold, frees_at = rules.channel_hold(case, debtor, bound[id(case)], chosen, now, caps)
        if hold is not None:
            raise ReminderRefused(hold.rule, f"invoice {case.number}: {hold.reason}",
                                  window.next_allowed(frees_at) if frees_at is not None else None)  # fmt: skip

    template_id = template or step.template_id
    cases.sort(key=lambda c: c.invoice_id)
    ids = [c.invoice_id for c in cases]
    sid = step_id(tenant, customer, policy.id, f"{ONE_OFF_STEP}:{chosen}:{now.isoformat()}", first.currency, ids)
    await repo.copy_outbox(apg, [_step_due(sid, cases, debtor, policy, step, chosen, template_id, now).record()])
    wake = getattr(outbox, "_on_commit", None)  # the relay's wake-up after commit, as the timer does
    if wake is not None:
        session.info.setdefault("after_commit", []).append(wake)
    by = actor.name if actor is not None else None
    reason = f"{ONE_OFF_STEP.replace('_', ' ')} ({chosen}, template {template_id}) sent to the notifier" + (
        f" at the request of {by}" if by else ""
    )
    detail: dict[str, Any] = {"step_id": sid, "channels": [chosen], "template_id": template_id, "one_off": True}
    if actor is not None:
        detail["actor"] = actor.as_detail()
    for case in cases:
        await repo.write_invoice_note(apg, tenant, customer, case.invoice_id, now, "sent", reason, ONE_OFF_STEP,
                                      **detail)  # fmt: skip
    return SentReminder(sid, customer, chosen, template_id, ids, now, by)


async def _load_calendar(debtor: Debtor, now: datetime) -> None:
    """The debtor's holiday calendar, loaded in a worker thread the first time (it imports a module)."""
    missing = missing_holidays([debtor.country], now.year)
    if missing:
        await asyncio.to_thread(load_holidays, missing, now.year)


def _step_due(
    sid: str, cases: list[Case], debtor: Debtor, policy: Policy, step: Step, channel: str, template_id: str,
    now: datetime,
) -> OutboxRow:  # fmt: skip
    """The one-off's dunning.step.due: the invoices' figures as the timer's step carries them, no fee, no action."""
    first = cases[0]
    window = rules.window(policy, debtor)
    today = local_day(window, now)
    units = minor_units(first.currency)
    invoices = [
        StepInvoiceRow(c.invoice_id, c.number, Decimal(c.total_minor).scaleb(-units), c.balance, c.due_date,
                       days_overdue(c.due_date, today))
        for c in cases
    ]  # fmt: skip
    return step_due_row(
        tenant_id=first.tenant_id, customer_id=first.customer_id, step_id=sid, policy_id=policy.id,
        policy_version=policy.version, step_index=policy.index_of[step.name], step_name=ONE_OFF_STEP,
        tone=step.tone, template_id=template_id, channels=[channel], channel_mode="all", currency=first.currency,
        amount_due=sum((c.balance for c in cases), Decimal(0)), invoices=invoices, fees=[], actions=[],
        scheduled_for=now, late=False, deliver_until=window.window_end(now), deliver_from=window.window_start(now),
        next_step=None, occurred_at=now,
    )  # fmt: skip
