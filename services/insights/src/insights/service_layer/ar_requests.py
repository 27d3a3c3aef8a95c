"""An AR figure's request from the API's query: its scope (tenant, filters, grouping, checked against the data)
and its dates, the defaults filled in (`as_of` and `to` today, `from` 89 days before `to`)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_kit.problems import FieldError, InvalidInput
from insights.domain.periods import DEFAULT_PERIOD_DAYS, intervals
from insights.domain.report import FigureQuery
from insights.service_layer import ar_figures
from insights.service_layer.ar_figures import FigureRequest, Group, Scope

MAX_INTERVALS = 1000  # rows of a series per key: about three years of days
AR_GROUPS: dict[str, Group | None] = {"segment": "segment", "customer": "customer", "currency": None}


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
