"""The comparison the end-to-end test runs after the merge, proven now against a stand-in for insights' figure
routes that serves the reference's own values in the contract's row shape (httpx.MockTransport, no services):
it reads every figure, accepts what is right and names what is off by a cent, by 0.01 day or by one invoice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
import pytest

from insights.domain.report import days
from tests.insights.figure_comparison import COLUMNS, DAYS, MONEY, RATIO, Mismatches, compare_figures
from tests.insights.reference_figures import ReferenceBook, intervals
from tests.insights.synthetic_ledger import SEGMENTS, generate

Row = dict[str, Any]
RATIO_PLACES = {"cei": 2, "collection_rate": 4, "kept_rate": 4}


def _cell(name: str, how: str, value: Any) -> Any:
    if value is None:
        return None
    if how == MONEY:
        return str(value)
    if how == DAYS:
        return days(value)
    if how == RATIO:
        return str(Decimal(value).quantize(Decimal(1).scaleb(-RATIO_PLACES[name]), rounding=ROUND_HALF_EVEN))
    return value


def stand_in(
    ref: ReferenceBook, tamper: Callable[[str, list[Row]], None] = lambda figure, rows: None
) -> httpx.MockTransport:
    """Serves /v1/figures/{aging,dso,cei,collection,promises} from the reference, as the contract shapes them."""

    def handle(request: httpx.Request) -> httpx.Response:
        figure = request.url.path.rsplit("/", 1)[-1]
        q = request.url.params
        segment = q.get("segment")
        rows: list[Row] = []
        grouped = q.get("group_by") == "segment"
        segments = list(SEGMENTS) if grouped else [segment]
        if figure == "aging":
            if q.get("interval"):  # a stock as of each interval's last day
                dates = [(b, {"from": a.isoformat(), "to": b.isoformat()})
                         for a, b in intervals(date.fromisoformat(q["from"]), date.fromisoformat(q["to"]), "month")]  # fmt: skip
            else:
                dates = [(date.fromisoformat(q["as_of"]), {})]
            for as_of, span in dates:
                for currency in ref.currencies():
                    for seg in segments:
                        for bucket, held in ref.aging(as_of, currency, seg).items():
                            rows.append({"currency": currency, "bucket": bucket, "amount": str(held.amount),
                                         "count": held.count} | span | ({"segment": seg} if grouped else {}))  # fmt: skip
        else:
            first, last = date.fromisoformat(q["from"]), date.fromisoformat(q["to"])
            spans = intervals(first, last, q["interval"]) if q.get("interval") else [(first, last)]  # type: ignore[arg-type]
            names = ("period_start", "period_end") if figure == "promises" else ("from", "to")
            for a, b in spans:
                for currency in ref.currencies():
                    for seg in segments:
                        if figure == "cei":
                            values: Any = {"cei": ref.cei(a, b, currency, seg)}
                        else:
                            fn = {"dso": ref.dso, "collection": ref.collection, "promises": ref.promises}[figure]
                            values = vars(fn(a, b, currency, seg))
                        row = {"currency": currency} | {
                            n: _cell(n, how, values[n]) for n, how in COLUMNS[figure].items()
                        }
                        if grouped:
                            row["segment"] = seg
                        if q.get("interval"):
                            row |= dict(zip(names, (a.isoformat(), b.isoformat()), strict=True))
                        if figure != "promises" or row["made"] or row["plans_created"]:
                            rows.append(row)
        tamper(figure, rows)
        return httpx.Response(
            200, json={"figure": figure, "columns": sorted({k for r in rows for k in r}), "rows": rows}
        )

    return httpx.MockTransport(handle)


@pytest.fixture(scope="module")
def ref() -> ReferenceBook:
    return ReferenceBook(generate(15, invoices=1_200, customers=40))


async def run(
    ref: ReferenceBook, tamper: Callable[[str, list[Row]], None] = lambda figure, rows: None
) -> tuple[int, Mismatches]:
    bad = Mismatches()
    async with httpx.AsyncClient(transport=stand_in(ref, tamper), base_url="http://insights") as api:
        compared = await compare_figures(api, ref, bad)
    return compared, bad


async def test_the_comparison_accepts_the_reference_served_as_the_contract_shapes_it(ref: ReferenceBook) -> None:
    compared, bad = await run(ref)
    assert not bad, bad[:10]
    assert compared > 2_000


def _first(rows: list[Row], **match: Any) -> Row:
    return next(r for r in rows if all(r.get(k) == v for k, v in match.items()) and r.get("amount") != "0")


@pytest.mark.parametrize(
    ("figure", "change", "named"),
    [
        ("aging", lambda rows: _first(rows, bucket="91+").update(amount=str(Decimal(_first(rows, bucket="91+")["amount"]) + Decimal("0.01"))), "91+ amount"),
        ("aging", lambda rows: _first(rows, bucket="current").update(count=_first(rows, bucket="current")["count"] + 1), "current count"),
        ("dso", lambda rows: rows[0].update(dso_countback=str(Decimal(rows[0]["dso_countback"]) + Decimal("0.01"))), "dso_countback"),
        ("dso", lambda rows: rows[0].update(add=str(Decimal(rows[0]["add"]) + Decimal("0.02"))), "dso add"),
        ("cei", lambda rows: rows[0].update(cei=None), "cei cei"),
        ("collection", lambda rows: rows.pop(0), "collection: no row served"),
        ("promises", lambda rows: rows[0].update(kept=rows[0]["kept"] + 1), "promises kept"),
    ],
)  # fmt: skip
async def test_the_comparison_names_a_figure_that_is_off(ref: ReferenceBook, figure: str, change: Callable[[list[Row]], None],
                                                       named: str) -> None:  # fmt: skip
    touched: list[str] = []

    def tamper(served: str, rows: list[Row]) -> None:
        if served == figure and rows and not touched:
            change(rows)
            touched.append(served)

    _, bad = await run(ref, tamper)
    assert touched and len(bad) == 1 and named in bad[0], bad[:5]
