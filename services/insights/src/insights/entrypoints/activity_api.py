"""Figures of what dunning did: promises and plans, dunning steps and channels, contact volume. Thin routes: the
query is checked here (dates, which groupings the figure has), one read of the service layer answers it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from dunning_kit.auth import Tenant
from dunning_kit.problems import FieldError, InvalidInput
from insights.domain.periods import DEFAULT_PERIOD_DAYS
from insights.domain.report import FigureQuery, FigureTable, GroupBy, Interval
from insights.entrypoints.deps import Runtime
from insights.entrypoints.figure_params import CSV_RESPONSES, FigureOut, answer, figure_query
from insights.service_layer import activity_figures as figures
from insights.service_layer.objects import InsightsRuntime

router = APIRouter(prefix="/v1/figures", tags=["figures"])
Query = Annotated[FigureQuery, Depends(figure_query)]
# Business dates of a ledger fall in here; outside, date arithmetic (a period's end, a month's last day) overflows.
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)
MAX_INTERVALS = 3700  # ten years of days: a series longer than that is a mistake, and its rows would be huge


def activity_query(
    tenant_id: str, q: FigureQuery, runtime: InsightsRuntime, allowed: frozenset[GroupBy], *, daily: bool = False
) -> figures.ActivityQuery:
    """The figure's query with its period resolved (`daily`: a daily series unless another interval is asked)."""
    refused = [g for g in q.group_by if g not in allowed]
    if refused:
        reason = f"this figure cannot be grouped by {', '.join(refused)} (it can by {', '.join(sorted(allowed))})"
        raise InvalidInput([FieldError("query.group_by", reason, "query")])
    for name, value in (("query.from", q.period_from), ("query.to", q.period_to)):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise InvalidInput([FieldError(name, f"outside {EARLIEST} to {LATEST}", "query")])
    period_to = q.period_to or runtime.clock.now().date()
    period_from = q.period_from or period_to - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if period_from > period_to:
        raise InvalidInput([FieldError("query.from", "after `to`", "query")])
    interval = q.interval or ("day" if daily else None)
    series = interval_count(period_from, period_to, interval) if interval else 0
    if series > MAX_INTERVALS:
        reason = f"{series} intervals is more than {MAX_INTERVALS}: ask a longer interval or a shorter period"
        raise InvalidInput([FieldError("query.interval", reason, "query")])
    return figures.ActivityQuery(
        tenant_id=tenant_id, period_from=period_from, period_to=period_to, currency=q.currency, segment=q.segment,
        customer_id=q.customer_id, group_by=q.group_by, interval=q.interval, convert=q.convert,
    )  # fmt: skip


def interval_count(period_from: date, period_to: date, interval: Interval) -> int:
    if interval == "day":
        return (period_to - period_from).days + 1
    if interval == "week":
        return (period_to - (period_from - timedelta(days=period_from.weekday()))).days // 7 + 1
    return (period_to.year - period_from.year) * 12 + period_to.month - period_from.month + 1


async def read(
    runtime: InsightsRuntime,
    query: figures.ActivityQuery,
    figure: Callable[[Any, figures.ActivityQuery], Awaitable[FigureTable]],
) -> FigureTable:
    async with runtime.sessions() as session, session.begin():
        return await figure(session, query)


@router.get("/promises", response_model=FigureOut, responses=CSV_RESPONSES, summary="Promises-to-pay and payment plans")
async def promise_figures(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    """Of the promises and payment plans created in the period (`from`-`to`): how many, their outcome as known
    now, the kept rate, the amounts promised and received. Group by segment, customer or currency; `interval` for
    a series by creation date."""
    query = activity_query(principal.tenant_id, q, runtime, figures.PROMISE_GROUPS)
    return answer(await read(runtime, query, figures.promise_figures), q)


@router.get(
    "/steps", response_model=FigureOut, responses=CSV_RESPONSES, summary="What each dunning step and channel achieves"
)
async def step_figures(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    """Of the dunning steps that went out in the period: deliveries sent, delivered, bounced, failed, opted out;
    the invoices and amount they asked for; the share of that amount and of those invoices paid within 3, 7 and
    14 days; the median days to pay. Per step (default) and/or per channel; `interval` for a series by send date."""
    query = activity_query(principal.tenant_id, q, runtime, figures.STEP_GROUPS)
    return answer(await read(runtime, query, figures.step_figures), q)


@router.get(
    "/contacts", response_model=FigureOut, responses=CSV_RESPONSES, summary="Contact volume per day and channel"
)
async def contact_figures(principal: Tenant, runtime: Runtime, q: Query) -> FigureOut | Response:
    """Per day (or `interval` week, month) and channel: deliveries sent, and contacts held back by a rule
    (contact cap, consent, quiet hours, other). Not per currency."""
    query = activity_query(principal.tenant_id, q, runtime, figures.CONTACT_GROUPS, daily=True)
    return answer(await read(runtime, query, figures.contact_figures), q)
