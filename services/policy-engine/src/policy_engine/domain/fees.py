"""Fees a step charges: fixed, percentage, statutory interest, compensation. No I/O.

Fees are computed from the ledger facts at the moment the step is decided (never accumulated by a
cron), so a redelivered or re-run decision computes the same amounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from dunning_events.money import round_money
from policy_engine.domain.policy import Compensation, FixedFee, PercentageFee, StatutoryInterest, Step

# BGB §286/§288: the reminder that puts a German debtor in default (the first one after the due date)
# may not be charged. This is law, not configuration: no policy can turn it off.
FREE_DEFAULT_NOTICE_COUNTRIES = frozenset({"DE"})


@dataclass(frozen=True)
class InvoiceFacts:
    invoice_id: str
    number: str
    balance: Decimal
    due_date: date | None
    in_default: bool  # an earlier post-due reminder was already sent
    compensation_charged: bool


@dataclass(frozen=True)
class FeeLine:
    kind: str
    description: str
    amount: Decimal
    invoice_id: str | None


@dataclass(frozen=True)
class StepFees:
    lines: list[FeeLine]
    waived: list[str]  # why fees that the step defines were not charged
    compensation_for: list[str]  # invoices whose one-time compensation this step charges


def days_overdue(due_date: date | None, today: date) -> int:
    return max(0, (today - due_date).days) if due_date else 0


def interest(balance: Decimal, rule: StatutoryInterest, due_date: date | None, today: date, currency: str) -> Decimal:
    """balance x (reference + points)% x days / 365, from the day after the due date."""
    days = days_overdue(due_date, today)
    rate = (rule.reference_rate_percent + rule.points) / Decimal(100)
    return round_money(balance * rate * Decimal(days) / Decimal(365), currency)


def step_fees(step: Step, invoices: list[InvoiceFacts], currency: str, today: date, country: str | None) -> StepFees:
    if not step.fees:
        return StepFees([], [], [])
    lines: list[FeeLine] = []
    waived: list[str] = []
    comp_for: list[str] = []
    german = (country or "").upper() in FREE_DEFAULT_NOTICE_COUNTRIES
    # The invoices this reminder puts in default: nothing may be charged on them, nor a per-message fee.
    defaulting = [inv for inv in invoices if german and step.offset_days > 0 and not inv.in_default]
    chargeable = [inv for inv in invoices if inv not in defaulting]
    if defaulting:
        numbers = ", ".join(inv.number for inv in defaulting)
        waived.append(
            f"no fee on the reminder that puts a German debtor in default (BGB §286) for invoice(s) {numbers}"
        )
    for rule in step.fees:
        if isinstance(rule, FixedFee):
            amount = rule.amounts.get(currency)
            if amount is None:
                waived.append(f"fixed fee: no amount configured for {currency}")
            elif defaulting:
                continue
            elif amount > 0:
                lines.append(FeeLine("fixed", rule.description, amount, None))
        elif isinstance(rule, PercentageFee):
            for inv in chargeable:
                amount = round_money(inv.balance * rule.percent / Decimal(100), currency)
                if amount > 0:
                    lines.append(FeeLine("percentage", f"{rule.description} ({rule.percent}% of {inv.number})",
                                         amount, inv.invoice_id))  # fmt: skip
        elif isinstance(rule, StatutoryInterest):
            for inv in chargeable:
                amount = interest(inv.balance, rule, inv.due_date, today, currency)
                if amount > 0:
                    rate = rule.reference_rate_percent + rule.points
                    lines.append(FeeLine(
                        "statutory_interest",
                        f"{rule.description} on {inv.number}: {rate}% p.a. ({rule.basis} + {rule.points}) for "
                        f"{days_overdue(inv.due_date, today)} days",
                        amount, inv.invoice_id,
                    ))  # fmt: skip
        elif isinstance(rule, Compensation):
            amount = rule.amounts.get(currency)
            if amount is None:
                waived.append(f"compensation: no amount configured for {currency}")
                continue
            for inv in chargeable:
                if inv.compensation_charged:
                    continue  # once per invoice, whatever the number of reminders
                lines.append(
                    FeeLine("compensation", f"{rule.description}, invoice {inv.number}", amount, inv.invoice_id)
                )
                comp_for.append(inv.invoice_id)
    return StepFees(lines, waived, comp_for)
