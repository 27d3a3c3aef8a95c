"""The AR figures API: aging, DSO, CEI and collection, each a FigureTable answered as JSON or CSV.

Dates: `as_of` defaults to today, `to` to today, `from` to 89 days before `to` (a 90-day period); with
`interval` a stock (aging, overdue) is taken at each interval's last day. Every row is per currency, or per the
reporting currency with `convert=true`.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_kit.auth import Tenant
from dunning_kit.problems import FieldError, InvalidInput
from insights.domain.periods import intervals
from insights.domain.report import FigureTable
from insights.entrypoints.deps import Runtime
from insights.entrypoints.figure_params import FigureOut, FigureQuery, answer, figure_query
from insights.service_layer import ar_figures
from insights.service_layer.ar_figures import FigureRequest, Group, Scope

router = APIRouter(prefix="/v1/figures", tags=["figures"])

CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}
DEFAULT_PERIOD_DAYS = 90
MAX_INTERVALS = 1000  # rows of a series per key: about three years of days
AR_GROUPS: dict[str, Group | None] = {"segment": "segment", "customer": "customer", "currency": None}
Query = Annotated[FigureQuery, Depends(figure_query)]


async def figure_request(
    session: AsyncSession, tenant_id: str, q: FigureQuery, today: date, *, stock: bool
) -> FigureRequest:
    """The figure's scope and dates from the query, with the defaults filled in; 422 for what cannot be read."""
    unknown = [g for g in q.group_by if g not in AR_GROUPS]
    if unknown:
        raise InvalidInput([FieldError("query.group_by", f"{unknown[0]!r}: AR figures group by segment, customer "
                                       "or currency", "query")])  # fmt: skip
    groups = tuple(g for g in (AR_GROUPS[name] for name in q.group_by) if g is not None)
    scope = Scope(tenant_id, q.currency, q.segment, q.customer_id, groups)
    await ar_figures.check_scope(session, scope)
    if stock and q.interval is None:
        as_of = q.as_of or today
        return FigureRequest(scope, [(as_of, as_of)], as_of=as_of, convert=q.convert, group_by=q.group_by)
    period_to = q.period_to or today
    period_from = q.period_from or period_to - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if period_from > period_to:
        raise InvalidInput([FieldError("query.from", f"{period_from} is after `to` ({period_to})", "query")])
    periods = intervals(period_from, period_to, q.interval)
    if len(periods) > MAX_INTERVALS:
        raise InvalidInput([FieldError("query.interval", f"{len(periods)} intervals; at most {MAX_INTERVALS}: "
                                       "use a longer interval or a shorter period", "query")])  # fmt: skip
    return FigureRequest(scope, periods, interval=q.interval, convert=q.convert, group_by=q.group_by)


async def _figure(runtime: Runtime, tenant_id: str, q: FigureQuery, figure: Any, *, stock: bool = False) -> Any:
    async with runtime.sessions() as session:
        req = await figure_request(session, tenant_id, q, runtime.clock.now().date(), stock=stock)
        table: FigureTable = await figure(session, req)
    return answer(table, q)


@router.get("/aging", response_model=FigureOut, responses=CSV,
            summary="Aging: open invoices per bucket (current, 1-30, 31-60, 61-90, 91+ days past due) as of a date")  # fmt: skip
async def aging(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    result: FigureOut | Response = await _figure(runtime, principal.tenant_id, q, ar_figures.aging, stock=True)
    return result


@router.get("/dso", response_model=FigureOut, responses=CSV,
            summary="DSO over a period: standard, countback, best possible, and average days delinquent (add)")  # fmt: skip
async def dso(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    result: FigureOut | Response = await _figure(runtime, principal.tenant_id, q, ar_figures.dso)
    return result


@router.get("/cei", response_model=FigureOut, responses=CSV,
            summary="Collection effectiveness index over a period, in percent")  # fmt: skip
async def cei(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    result: FigureOut | Response = await _figure(runtime, principal.tenant_id, q, ar_figures.cei)
    return result


@router.get("/collection", response_model=FigureOut, responses=CSV,
            summary="Collection over a period: collected of what fell due, overdue, written off, disputed")  # fmt: skip
async def collection(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    result: FigureOut | Response = await _figure(runtime, principal.tenant_id, q, ar_figures.collection)
    return result
