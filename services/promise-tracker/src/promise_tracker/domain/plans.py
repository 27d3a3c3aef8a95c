"""Payment plans, free of I/O: splitting a balance into instalments, their dates, and what a miss does."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from promise_tracker.domain.rules import OnMissed

Interval = Literal["weekly", "fortnightly", "monthly"]


def split_balance(total_minor: int, count: int) -> list[int]:
    """Equal instalments in minor units summing exactly to the total; the remainder goes on the FIRST
    instalment (the customer pays the odd cents up front, and every later instalment is the same)."""
    if count < 1:
        raise ValueError("a plan needs at least one instalment")
    if total_minor < count:
        raise ValueError("every instalment must be at least one minor unit")
    base, remainder = divmod(total_minor, count)
    return [base + remainder] + [base] * (count - 1)


def add_months(day: date, months: int) -> date:
    """Same day of month `months` later, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def instalment_dates(first: date, count: int, interval: Interval) -> list[date]:
    if interval == "monthly":
        return [add_months(first, k) for k in range(count)]
    step = 7 if interval == "weekly" else 14
    return [first + timedelta(days=step * k) for k in range(count)]


@dataclass(frozen=True)
class MissDecision:
    defaulted: bool
    strikes: int


def on_missed_instalment(on_missed: OnMissed, strikes_before: int, max_strikes: int) -> MissDecision:
    """A missed instalment always counts a strike; "cancel" defaults at once, "strike" only once the plan
    has missed more than `max_strikes` instalments."""
    strikes = strikes_before + 1
    if on_missed == "cancel":
        return MissDecision(True, strikes)
    return MissDecision(strikes > max_strikes, strikes)


def spread_over_instalments(amount_minor: int, still_needed: list[int]) -> list[int]:
    """Money paid toward a plan fills the earliest open instalment first and carries over to the next
    (an early or large payment counts for later instalments). Returns the share of each instalment;
    anything beyond the plan's remaining need is not counted."""
    shares = []
    left = amount_minor
    for need in still_needed:
        take = max(0, min(left, need))
        shares.append(take)
        left -= take
    return shares
