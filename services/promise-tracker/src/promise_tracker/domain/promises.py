"""Promise-to-pay rules, free of I/O: the deadline, what a new promise must satisfy, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from promise_tracker.domain.rules import PromiseRules

END_OF_DAY = time(23, 59, 59)


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str


class PromiseRejected(Exception):
    """A promise or plan the rules refuse; carries every field at fault (the API answers 422)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))
        self.errors = errors

    @classmethod
    def one(cls, field: str, reason: str) -> PromiseRejected:
        return cls([FieldError(field, reason)])


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_today(now: datetime, time_zone: str) -> date:
    return now.astimezone(zone(time_zone)).date()


def deadline_for(promised_date: date, time_zone: str, grace_days: int) -> datetime:
    """End of the promised day (23:59:59 in the customer's zone) plus grace days, as a UTC instant."""
    last_day = promised_date + timedelta(days=grace_days)
    return datetime.combine(last_day, END_OF_DAY, tzinfo=zone(time_zone)).astimezone(UTC)


def check_at_for(deadline: datetime, settle_seconds: float) -> datetime:
    """When the deadline check runs: after the deadline's last second has passed, plus a settle window in
    which a payment made in time but still travelling from the ERP can arrive."""
    return deadline + timedelta(seconds=1 + settle_seconds)


@dataclass(frozen=True)
class CoveredInvoice:
    invoice_id: str
    customer_id: str
    currency: str
    balance_minor: int
    status: str


def validate_promise(
    *,
    customer_id: str,
    invoice_ids: list[str],
    invoices: dict[str, CoveredInvoice],
    currency: str,
    amount_minor: int,
    promised_date: date,
    today: date,
    rules: PromiseRules,
    already_committed: set[str],
    amount_field: str = "amount",
    date_field: str = "promised_date",
) -> None:
    """Raise PromiseRejected naming every field at fault; returns quietly when the promise may be recorded."""
    errors: list[FieldError] = []
    if not invoice_ids:
        errors.append(FieldError("invoice_ids", "at least one invoice is required"))
    if len(set(invoice_ids)) != len(invoice_ids):
        errors.append(FieldError("invoice_ids", "an invoice is listed twice"))
    missing = [i for i in invoice_ids if i not in invoices or invoices[i].customer_id != customer_id]
    if missing:
        errors.append(FieldError("invoice_ids", f"unknown invoice(s) for customer {customer_id}: {', '.join(missing)}"))
    closed = [i for i in invoice_ids if i in invoices and i not in missing and invoices[i].status != "open"]
    if closed:
        errors.append(FieldError("invoice_ids", f"not open: {', '.join(closed)}"))
    committed = sorted(set(invoice_ids) & already_committed)
    if committed:
        errors.append(FieldError("invoice_ids", f"an active promise or plan already covers {', '.join(committed)}"))
    known = [invoices[i] for i in invoice_ids if i in invoices and i not in missing]
    other_currency = sorted({inv.currency for inv in known} - {currency})
    if other_currency:
        errors.append(FieldError("currency", f"{currency} does not match the invoices' currency {other_currency[0]}"))
    if amount_minor <= 0:
        errors.append(FieldError(amount_field, "must be positive"))
    elif known and not other_currency:
        open_balance = sum(inv.balance_minor for inv in known)
        if amount_minor > open_balance:
            errors.append(FieldError(amount_field, "exceeds the covered invoices' open balance"))
    if promised_date < today:
        errors.append(FieldError(date_field, f"is in the past (today is {today.isoformat()} in the customer's zone)"))
    elif promised_date > today + timedelta(days=rules.max_horizon_days):
        errors.append(FieldError(date_field, f"is beyond the maximum promise horizon of {rules.max_horizon_days} days"))
    if errors:
        raise PromiseRejected(errors)


Verdict = Literal["kept", "partially_kept", "broken"]


@dataclass(frozen=True)
class DeadlineOutcome:
    verdict: Verdict
    shortfall_minor: int


def judge_at_deadline(amount_minor: int, received_minor: int, all_invoices_settled: bool) -> DeadlineOutcome:
    """The deadline passed: kept if the promised amount arrived (or nothing is left to pay), else broken,
    partially kept when something but not enough arrived."""
    if received_minor >= amount_minor or all_invoices_settled:
        return DeadlineOutcome("kept", 0)
    shortfall = amount_minor - max(received_minor, 0)
    return DeadlineOutcome("partially_kept" if received_minor > 0 else "broken", shortfall)


def counts_toward(
    *,
    occurred_at: datetime,
    business_date: date | None,
    promise_created_at: datetime,
    deadline: datetime,
    time_zone: str,
) -> bool:
    """Whether a payment or credit note counts toward a promise: made after the promise, and in time.

    In time means it happened by the deadline's last second, or the ledger dates it (received_on,
    issued_on) on or before the deadline's day in the customer's zone: an ERP that syncs overnight must
    not turn a payment made on the promised day into a broken promise.
    """
    created_day = promise_created_at.astimezone(zone(time_zone)).date()
    if occurred_at < promise_created_at or (business_date is not None and business_date < created_day):
        return False
    if occurred_at < deadline + timedelta(seconds=1):
        return True
    deadline_day = deadline.astimezone(zone(time_zone)).date()
    return business_date is not None and business_date <= deadline_day
