"""The accounts-receivable formulas, one named function each, over exact Decimals: the SQL of
service_layer/ar_figures.py only gathers their inputs (balances, sales), so what a figure means is read here.

None means "not defined" (no sales to divide by): the API serves it as null with a note, never as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Literal

Bucket = Literal["current", "1-30", "31-60", "61-90", "91+"]
BUCKETS: tuple[Bucket, ...] = ("current", "1-30", "31-60", "61-90", "91+")
# The last day past due each bucket holds, oldest bucket open-ended (the SQL of the figures is built from this).
BUCKET_LIMITS: tuple[tuple[int, Bucket], ...] = ((0, "current"), (30, "1-30"), (60, "31-60"), (90, "61-90"))
OLDEST_BUCKET: Bucket = "91+"
COUNTBACK_MONTHS = 36  # how far back the countback walks before it stops counting


def aging_bucket(days_past_due: int) -> Bucket:
    """The aging bucket of an invoice `days_past_due` days after its due date (0 or less: not due yet)."""
    for last_day, bucket in BUCKET_LIMITS:
        if days_past_due <= last_day:
            return bucket
    return OLDEST_BUCKET


def dso_standard(ar: Decimal, sales: Decimal, days: int) -> Decimal | None:
    """Days sales outstanding: AR at the end of the period / credit sales of the period x its days."""
    return None if sales <= 0 else ar / sales * days


def best_possible_dso(current_ar: Decimal, sales: Decimal, days: int) -> Decimal | None:
    """The DSO if every customer paid on time: only the part of AR not yet due / sales x days."""
    return None if sales <= 0 else current_ar / sales * days


def average_days_delinquent(dso: Decimal | None, best_possible: Decimal | None) -> Decimal | None:
    """ADD: the days the late part of AR adds to DSO (standard DSO - best possible DSO)."""
    return None if dso is None or best_possible is None else dso - best_possible


def dso_countback(ar: Decimal, windows: Sequence[tuple[Decimal, int]]) -> Decimal | None:
    """Countback DSO: how many of the latest days' sales the AR still holds.

    `windows` are (credit sales, days) newest first: the first is [first of the end's month, end], then whole
    calendar months going back. Walking them, a window whose sales the remaining AR covers is subtracted whole
    and adds its days; the first one it does not cover adds the fraction remaining / sales of its days, and the
    walk ends. AR beyond every window given (at most 36 months) counts as all their days. No sales in any
    window: None. AR of zero or less: 0 days.
    """
    if not any(sales > 0 for sales, _ in windows):
        return None
    remaining, total = ar, Decimal(0)
    for sales, days in windows:
        if remaining <= 0:
            break
        if remaining >= sales:
            remaining -= sales
            total += days
        else:
            return total + remaining / sales * days
    return total


def cei(ar_begin: Decimal, sales: Decimal, ar_end: Decimal, current_ar_end: Decimal) -> Decimal | None:
    """Collection effectiveness index, in percent: what was collected of what could have been collected.

    (AR at the start + sales - AR at the end) / (AR at the start + sales - the part of AR at the end not yet
    due) x 100. None when nothing could have been collected (the denominator is 0).
    """
    collectible = ar_begin + sales - current_ar_end
    return None if collectible == 0 else (ar_begin + sales - ar_end) / collectible * 100


def collection_rate(collected: Decimal, due: Decimal) -> Decimal | None:
    """Of the invoices due in a period: what was collected in the period / what fell due (a ratio, 1 = all)."""
    return None if due <= 0 else collected / due
