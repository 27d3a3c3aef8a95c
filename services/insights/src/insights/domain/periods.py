"""The calendar a figure is read over: a period cut into day, week (Monday to Sunday) or calendar-month
intervals, and the month windows the countback DSO walks back through."""

from __future__ import annotations

from datetime import date, timedelta

from insights.domain.formulas import COUNTBACK_MONTHS
from insights.domain.report import Interval

Period = tuple[date, date]  # first and last day, both inclusive


# A figure over a period covers these days ending at `to` when `from` is not given.
DEFAULT_PERIOD_DAYS = 90


def month_start(day: date) -> date:
    return day.replace(day=1)


def months_before(first: date, n: int) -> date:
    """The first day of the month `n` months before the month starting at `first`."""
    index = first.year * 12 + first.month - 1 - n
    return date(index // 12, index % 12 + 1, 1)


def _next_start(day: date, interval: Interval) -> date:
    if interval == "day":
        return day + timedelta(days=1)
    if interval == "week":
        return day + timedelta(days=7 - day.weekday())
    return months_before(month_start(day), -1)


def intervals(period_from: date, period_to: date, interval: Interval | None) -> list[Period]:
    """The period as one interval, or cut by `interval`; the first and last ones clipped to the period."""
    if interval is None:
        return [(period_from, period_to)]
    out: list[Period] = []
    start = period_from
    while start <= period_to:
        following = _next_start(start, interval)
        out.append((start, min(following - timedelta(days=1), period_to)))
        start = following
    return out


def countback_windows(end: date) -> list[Period]:
    """Newest first: [first of `end`'s month, end], then the whole months before it, 36 windows in all."""
    first = month_start(end)
    windows: list[Period] = [(first, end)]
    for n in range(1, COUNTBACK_MONTHS):
        start = months_before(first, n)
        windows.append((start, months_before(first, n - 1) - timedelta(days=1)))
    return windows


def length(period: Period) -> int:
    return (period[1] - period[0]).days + 1
