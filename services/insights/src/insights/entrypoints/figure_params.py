"""The query every figure route reads (dates, filters, grouping, series interval, conversion, CSV) and the one way
a FigureTable is answered (JSON, or CSV on `format=csv` / `Accept: text/csv`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from dunning_kit.problems import FieldError, InvalidInput
from insights.domain.report import Cell, FigureQuery, FigureTable, GroupBy, Interval

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
# What every figure route documents beside its JSON model: the same rows as CSV.
CSV_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}


def figure_query(
    request: Request,
    as_of: Annotated[date | None, Query(description="The date a stock figure is taken at (default: today)")] = None,
    period_from: Annotated[
        date | None,
        Query(alias="from", description="First day of the period (inclusive); default: 89 days before `to`"),
    ] = None,
    period_to: Annotated[
        date | None, Query(alias="to", description="Last day of the period (inclusive); default: today")
    ] = None,
    currency: Annotated[str | None, Query(pattern="^[A-Z]{3}$", description="Only this currency")] = None,
    segment: Annotated[str | None, Query(max_length=100, description="Only customers of this segment")] = None,
    customer_id: Annotated[str | None, Query(max_length=200, description="Only this customer")] = None,
    group_by: Annotated[
        list[GroupBy] | None, Query(description="Group rows by these (repeatable); every figure is also per currency")
    ] = None,
    interval: Annotated[Interval | None, Query(description="A time series: one row per day, week or month")] = None,
    convert: Annotated[
        bool, Query(description="Convert into the tenant's reporting currency with its own rates (PUT /v1/fx-rates)")
    ] = False,
    format: Annotated[Literal["json", "csv"] | None, Query(description="csv: the same rows as CSV")] = None,
) -> FigureQuery:
    if period_from is not None and period_to is not None and period_from > period_to:
        raise InvalidInput([FieldError("query.from", "after `to`", "query")])
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    return FigureQuery(as_of, period_from, period_to, currency, segment, customer_id, list(dict.fromkeys(group_by or [])),
                       interval, convert, wants_csv)  # fmt: skip


class FxRateUsedOut(BaseModel):
    currency: str
    quote_currency: str
    rate_date: date
    rate: Decimal


class FigureOut(BaseModel):
    """A figure as a table: the same `rows` as the CSV export; money and days are exact decimal strings."""

    figure: str
    as_of: date | None = None
    period_from: date | None = Field(None, serialization_alias="from")
    period_to: date | None = Field(None, serialization_alias="to")
    interval: Interval | None = None
    group_by: list[GroupBy]
    reporting_currency: str | None = Field(None, description="Set when amounts were converted into it")
    fx_rates_used: list[FxRateUsedOut]
    columns: list[str]
    rows: list[dict[str, Cell]]
    note: str | None = Field(None, description="Why the rows are empty, or what a null figure means")


def answer(table: FigureTable, query: FigureQuery) -> FigureOut | Response:
    if query.csv:
        name = f"{table.figure}.csv"
        return Response(
            table.csv(), media_type=CSV_MEDIA_TYPE, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )
    return FigureOut(
        figure=table.figure, as_of=table.as_of, period_from=table.period_from, period_to=table.period_to,
        interval=table.interval, group_by=table.group_by, reporting_currency=table.reporting_currency,
        fx_rates_used=[FxRateUsedOut(**vars(f)) for f in table.fx_rates_used], columns=table.columns,
        rows=table.rows, note=table.note,
    )  # fmt: skip
