"""The AR figures API: aging, DSO, CEI and collection, each a FigureTable answered as JSON or CSV.

Dates: `as_of` defaults to today, `to` to today, `from` to 89 days before `to` (a 90-day period); with
`interval` a stock (aging, overdue) is taken at each interval's last day. Every row is per currency, or per the
reporting currency with `convert=true`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from dunning_kit.auth import Tenant
from insights.domain.report import FigureQuery, FigureTable
from insights.entrypoints.deps import Runtime
from insights.entrypoints.figure_params import CSV_RESPONSES, FigureOut, answer, figure_query
from insights.service_layer import ar_figures
from insights.service_layer.ar_requests import figure_request

router = APIRouter(prefix="/v1/figures", tags=["figures"])

Query = Annotated[FigureQuery, Depends(figure_query)]


async def _figure(runtime: Runtime, tenant_id: str, q: FigureQuery, figure: Any, *, stock: bool = False) -> Any:
    async with runtime.sessions() as session:
        req = await figure_request(session, tenant_id, q, runtime.clock.now().date(), stock=stock)
        table: FigureTable = await figure(session, req)
    return answer(table, q)


@router.get("/aging", response_model=FigureOut, responses=CSV_RESPONSES,
            summary="Aging: open invoices per bucket (current, 1-30, 31-60, 61-90, 91+ days past due) as of a date")  # fmt: skip
async def aging(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    result: FigureOut | Response = await _figure(runtime, principal.tenant_id, q, ar_figures.aging, stock=True)
    return result


@router.get("/dso", response_model=FigureOut, responses=CSV_RESPONSES,
            summary="DSO over a period: standard, countback, best possible, and average days delinquent (add)")  # fmt: skip
async def dso(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    result: FigureOut | Response = await _figure(runtime, principal.tenant_id, q, ar_figures.dso)
    return result


@router.get("/cei", response_model=FigureOut, responses=CSV_RESPONSES,
            summary="Collection effectiveness index over a period, in percent")  # fmt: skip
async def cei(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    result: FigureOut | Response = await _figure(runtime, principal.tenant_id, q, ar_figures.cei)
    return result


@router.get("/collection", response_model=FigureOut, responses=CSV_RESPONSES,
            summary="Collection over a period: collected of what fell due, overdue, written off, disputed")  # fmt: skip
async def collection(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    result: FigureOut | Response = await _figure(runtime, principal.tenant_id, q, ar_figures.collection)
    return result
