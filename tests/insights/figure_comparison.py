"""Every ledger and promise figure insights serves over HTTP, compared with the reference computation
(reference_figures.py) at several as-of dates and periods, per currency and per segment, and as a monthly series.
The columns read are the contract's (the insights README's Figures section): COLUMNS."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx

from insights.domain.report import days as served_days
from tests.insights.reference_figures import ReferenceBook, intervals
from tests.insights.synthetic_ledger import SEGMENTS

AS_OF = (date(2025, 3, 31), date(2025, 9, 15), date(2025, 12, 31), date(2026, 3, 1))
PERIODS = ((date(2025, 1, 1), date(2025, 3, 31)), (date(2025, 7, 1), date(2025, 9, 30)),
           (date(2025, 12, 2), date(2026, 3, 1)), (date(2024, 9, 2), date(2026, 3, 1)))  # fmt: skip
SERIES = (date(2025, 10, 1), date(2026, 1, 15))  # interval=month, the last month clipped
# A series row names its interval by these columns (figures-ar: from/to; figures-activity: period_start/period_end).
INTERVAL_COLUMNS = (("from", "to"), ("period_start", "period_end"))
MONEY, COUNT, DAYS, RATIO = "money", "count", "days", "ratio"
# The columns compared, figure by figure, and how (the insights README's Figures section).
COLUMNS: dict[str, dict[str, str]] = {
    "dso": {"ar": MONEY, "credit_sales": MONEY, "days": COUNT, "dso_standard": DAYS, "dso_countback": DAYS,
            "best_possible_dso": DAYS, "add": DAYS},
    "cei": {"cei": RATIO},
    "collection": {"collected": MONEY, "due": MONEY, "collection_rate": RATIO, "overdue": MONEY,
                   "written_off": MONEY, "disputed": MONEY},
    "promises": {"made": COUNT, "kept": COUNT, "broken": COUNT, "partially_kept": COUNT, "cancelled": COUNT,
                 "open": COUNT, "kept_rate": RATIO, "amount_promised": MONEY, "amount_received": MONEY,
                 "plans_created": COUNT, "plans_completed": COUNT, "plans_defaulted": COUNT, "plans_active": COUNT,
                 "plans_amount": MONEY},
}  # fmt: skip


class Mismatches(list[str]):
    def compare(self, where: str, how: str, got: Any, want: Decimal | int | None) -> None:
        """Money to the cent (exact: the sums are exact), days to 0.01 (half-even, as `days()` serves them; ADD may
        differ by 0.01 as a difference of rounded parts), ratios and percentages rounded half-even to the places
        served (at least two), counts exactly. Unknown (None) must be served as null."""
        ok = True
        if got is None or want is None:
            ok = got is None and want is None
        elif how == COUNT:
            ok = got == want
        elif how == MONEY:
            ok = Decimal(str(got)) == want
        elif how == DAYS:
            slack = Decimal("0.01") if where.endswith(" add") else Decimal(0)
            ok = abs(Decimal(str(got)) - Decimal(served_days(Decimal(want)) or 0)) <= slack
        else:
            served = Decimal(str(got))
            places = max(2, -int(served.as_tuple().exponent))
            ok = Decimal(want).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN) == served
        if not ok:
            self.append(f"{where}: served {got!r}, reference {want}")


async def _figure(api: httpx.AsyncClient, name: str, **params: Any) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/figures/{name}", params={k: v for k, v in params.items() if v is not None})
    assert r.status_code == 200, (name, params, r.status_code, r.text[:800])
    return r.json()["rows"]  # type: ignore[no-any-return]


def _interval_of(row: dict[str, Any]) -> tuple[Any, Any]:
    for first, last in INTERVAL_COLUMNS:
        if first in row:
            return row[first], row[last]
    raise AssertionError(f"a series row without its interval: {row}")


def _rows_by(rows: list[dict[str, Any]], *keys: str, series: bool = False) -> dict[tuple[Any, ...], dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row.get(k) for k in keys) + (_interval_of(row) if series else ())
        assert key not in out, f"two rows for {key}: {rows}"
        out[key] = row
    return out


def _reference_values(ref: ReferenceBook, figure: str, first: date, last: date, currency: str,
                      segment: str | None) -> dict[str, Decimal | int | None]:  # fmt: skip
    if figure == "cei":
        return {"cei": ref.cei(first, last, currency, segment)}
    if figure == "dso":
        value: Any = ref.dso(first, last, currency, segment)
    elif figure == "collection":
        value = ref.collection(first, last, currency, segment)
    else:
        value = ref.promises(first, last, currency, segment)
    return {name: getattr(value, name) for name in COLUMNS[figure]}


def _compare_rows(bad: Mismatches, figure: str, at: str, row: dict[str, Any] | None,
                  want: dict[str, Decimal | int | None]) -> int:  # fmt: skip
    if row is None:  # no row: right only when there is nothing to say (no invoice, sale or promise there)
        if any(v for v in want.values()):
            bad.append(f"{at} {figure}: no row served, reference {want}")
        return 1
    for name, how in COLUMNS[figure].items():
        bad.compare(f"{at} {figure} {name}", how, row.get(name, "<missing column>"), want[name])
    return len(COLUMNS[figure])


async def compare_figures(api: httpx.AsyncClient, ref: ReferenceBook, bad: Mismatches) -> int:
    """Every figure at every date and period, for the tenant (rows per currency), per segment (the filter, and
    group_by=segment), and as a monthly series; returns how many values were compared."""
    compared = 0
    scopes: list[str | None] = [None, *SEGMENTS]
    nothing = {"amount": "0", "count": 0}  # a bucket may be left out when no invoice of its currency is open

    def aging(rows: dict[tuple[Any, ...], dict[str, Any]], as_of: date, segment: str | None, *,
              group: tuple[str, ...] = (), span: tuple[str, ...] = ()) -> int:  # fmt: skip
        """One aging answer's rows, keyed (currency, *group, bucket, *span), against the reference as of `as_of`."""
        n = 0
        for currency in ref.currencies():
            for bucket, held in ref.aging(as_of, currency, segment).items():
                row = rows.get((currency, *group, bucket, *span), nothing)
                where = f"aging {as_of} {segment or 'all'}{' grouped' if group else ''} {currency} {bucket}"
                bad.compare(f"{where} amount", MONEY, row["amount"], held.amount)
                bad.compare(f"{where} count", COUNT, row["count"], held.count)
                n += 2
        return n

    for as_of in AS_OF:
        for segment in scopes:
            rows = _rows_by(await _figure(api, "aging", as_of=as_of.isoformat(), segment=segment), "currency", "bucket")
            compared += aging(rows, as_of, segment)
        grouped = _rows_by(await _figure(api, "aging", as_of=as_of.isoformat(), group_by="segment"),
                           "currency", "segment", "bucket")  # fmt: skip
        for segment in SEGMENTS:
            compared += aging(grouped, as_of, segment, group=(segment,))
    series = _rows_by(await _figure(api, "aging", **{"from": SERIES[0].isoformat(), "to": SERIES[1].isoformat()},
                                    interval="month"), "currency", "bucket", series=True)  # fmt: skip
    for first, last in intervals(*SERIES, "month"):  # a stock as of each interval's last day
        compared += aging(series, last, None, span=(first.isoformat(), last.isoformat()))

    async def served(first: date, last: date, segment: str | None, interval: str | None = None,
                     group_by: str | None = None) -> dict[str, Any]:  # fmt: skip
        params = {"from": first.isoformat(), "to": last.isoformat(), "segment": segment, "interval": interval,
                  "group_by": group_by}  # fmt: skip
        answers = await asyncio.gather(*(_figure(api, figure, **params) for figure in COLUMNS))
        keys = ("currency", "segment") if group_by else ("currency",)
        return {f: _rows_by(rows, *keys, series=interval is not None) for f, rows in zip(COLUMNS, answers, strict=True)}

    for first, last in PERIODS:
        for segment in scopes:
            got = await served(first, last, segment)
            for figure in COLUMNS:
                for currency in ref.currencies():
                    values = _reference_values(ref, figure, first, last, currency, segment)
                    at = f"{first}..{last} {segment or 'all'} {currency}"
                    compared += _compare_rows(bad, figure, at, got[figure].get((currency,)), values)
    first, last = PERIODS[2]
    got = await served(first, last, None, group_by="segment")
    for figure in COLUMNS:
        for currency in ref.currencies():
            for segment in SEGMENTS:
                values = _reference_values(ref, figure, first, last, currency, segment)
                at = f"{first}..{last} grouped {segment} {currency}"
                compared += _compare_rows(bad, figure, at, got[figure].get((currency, segment)), values)
    got = await served(*SERIES, None, interval="month")
    for first, last in intervals(*SERIES, "month"):
        for figure in COLUMNS:
            for currency in ref.currencies():
                values = _reference_values(ref, figure, first, last, currency, None)
                row = got[figure].get((currency, first.isoformat(), last.isoformat()))
                compared += _compare_rows(bad, figure, f"series {first}..{last} {currency}", row, values)
    return compared
