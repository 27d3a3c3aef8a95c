"""The arithmetic of the activity figures (promises, steps, contacts), pure: shares, the median of days to pay,
the intervals of a series, and the tallies the SQL returns per currency, merged into one reporting currency when a
figure is converted. The SQL counts and sums; everything that rounds or divides happens here, exactly."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from insights.domain.report import Interval

SHARE = Decimal("0.0001")  # shares and rates are served to 4 places, half-even


def share(part: Decimal | int, whole: Decimal | int) -> str | None:
    """part / whole to 4 places, half-even; None when the whole is zero (nothing to take a share of)."""
    if whole == 0:
        return None
    # 60 digits: sums of NUMERIC(24,4) amounts divide with no rounding before the one to 4 places.
    with localcontext() as ctx:
        ctx.prec = 60
        return str((Decimal(part) / Decimal(whole)).quantize(SHARE, rounding=ROUND_HALF_EVEN))


def paid_within(balance: Decimal, paid: Decimal) -> Decimal:
    """What a step can be credited with for one invoice: the money that came in after it, never below zero and
    never more than the balance the step asked for."""
    return min(balance, max(Decimal(0), paid))


def median_days(histogram: Counter[int]) -> Decimal | None:
    """The median of whole days given as {days: how many invoices}; the mean of the two middle values when the
    count is even; None when there is nothing to take a median of."""
    n = sum(histogram.values())
    if n == 0:
        return None
    lower_rank, upper_rank = (n + 1) // 2, n // 2 + 1  # 1-based ranks of the middle value(s)
    lower = upper = None
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if lower is None and seen >= lower_rank:
            lower = value
        if seen >= upper_rank:
            upper = value
            break
    assert lower is not None
    if n % 2:
        return Decimal(lower)
    assert upper is not None
    return (Decimal(lower) + Decimal(upper)) / 2


def interval_start(day: date, interval: Interval, period_from: date) -> date:
    """The first day of the interval `day` falls in, clipped to the period (weeks Monday-Sunday, months calendar)."""
    if interval == "day":
        return day
    start = day - timedelta(days=day.weekday()) if interval == "week" else day.replace(day=1)
    return max(start, period_from)


@dataclass
class Tally:
    """One row of a figure before it is rounded: counts, exact money sums (in `currency`) and, for the median,
    how many invoices were paid after how many days."""

    counts: Counter[str] = field(default_factory=Counter)
    money: dict[str, Decimal] = field(default_factory=dict)
    days_to_pay: Counter[int] = field(default_factory=Counter)

    def add(self, other: Tally, rate: Decimal = Decimal(1)) -> None:
        self.counts.update(other.counts)
        for name, amount in other.money.items():
            self.money[name] = self.money.get(name, Decimal(0)) + amount * rate
        self.days_to_pay.update(other.days_to_pay)

    def amount(self, name: str) -> Decimal:
        return self.money.get(name, Decimal(0))


# A row's key: (first day of its interval or None, the values of its groups..., currency). Currency is last.
Key = tuple[date | str | None, ...]


def converted(tallies: dict[Key, Tally], rates: dict[str, Decimal], reporting_currency: str) -> dict[Key, Tally]:
    """Tallies per currency merged into one per reporting currency: money multiplied by the currency's rate, counts
    and day histograms added. Shares and medians are computed after this, from the merged sums, so a converted
    share is Σ converted numerators / Σ converted denominators, never an average of per-currency shares."""
    out: dict[Key, Tally] = {}
    for key, tally in tallies.items():
        merged = out.setdefault((*key[:-1], reporting_currency), Tally())
        merged.add(tally, rates[str(key[-1])])
    return out
