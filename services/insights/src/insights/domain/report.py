"""A figure as the API serves it: a table of flat rows (the same rows in JSON and in CSV), the period or date it is
about, how it is grouped, which FX rates converted it, and a note that says why it is empty or partly unknown."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

Cell = str | int | None  # money and days are decimal strings (exact), counts are ints
GroupBy = Literal["segment", "customer", "currency", "step", "channel"]
Interval = Literal["day", "week", "month"]

DAYS = Decimal("0.01")  # day figures (DSO, ADD, median days) are served to 0.01 day


def days(value: Decimal | None) -> str | None:
    """A figure in days, rounded half-even to 0.01 day; None (unknown) stays None."""
    return None if value is None else str(value.quantize(DAYS, rounding=ROUND_HALF_EVEN))


def money(value: Decimal, exponent: int = 2) -> str:
    """An amount at its currency's precision (exact sums never need rounding; converted ones do, half-even)."""
    return str(value.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True)
class FxRateUsed:
    currency: str
    quote_currency: str
    rate_date: date  # the date the rate was supplied for (the latest on or before the figure's date)
    rate: Decimal


@dataclass
class FigureTable:
    figure: str  # e.g. "aging", "dso"
    columns: list[str]
    rows: list[dict[str, Cell]] = field(default_factory=list)
    as_of: date | None = None
    period_from: date | None = None
    period_to: date | None = None
    interval: Interval | None = None
    group_by: list[GroupBy] = field(default_factory=list)
    reporting_currency: str | None = None  # set when amounts were converted into it
    fx_rates_used: list[FxRateUsed] = field(default_factory=list)
    note: str | None = None  # why rows are empty, or what a null figure means

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, extrasaction="raise", lineterminator="\r\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in self.columns})
        return out.getvalue()


@dataclass(frozen=True)
class FigureQuery:
    """What a figure route was asked: the dates, filters, grouping, series interval, conversion and format."""

    as_of: date | None
    period_from: date | None
    period_to: date | None
    currency: str | None
    segment: str | None
    customer_id: str | None
    group_by: list[GroupBy]
    interval: Interval | None
    convert: bool
    csv: bool
