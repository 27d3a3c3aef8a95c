"""Prometheus gauges of the AR per tenant and currency, refreshed by a runtime timer from the daily tables (a
read of a few thousand rows per tenant): the overdue amount now, and the standard DSO over the last 90 days."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from prometheus_client import Gauge
from sqlalchemy import text

from insights.domain.formulas import dso_standard
from insights.service_layer.objects import InsightsRuntime

OVERDUE = Gauge(
    "dunning_insights_overdue_amount", "Open amount past its due date, in the currency's units", ["tenant", "currency"]
)
DSO = Gauge(
    "dunning_insights_dso_days", "Standard DSO over the last 90 days (absent without sales)", ["tenant", "currency"]
)
DSO_DAYS = 90
REFRESH_EVERY = timedelta(seconds=60)


async def refresh_gauges(runtime: InsightsRuntime) -> None:
    """Set both gauges for every tenant and currency with receivables; drop the series that no longer exist
    (a DSO without sales is unknown, not 0)."""
    today = runtime.clock.now().date()
    async with runtime.sessions() as session:
        ar = (
            await session.execute(
                text(
                    "SELECT tenant_id, currency, sum(amount) AS ar,"
                    " coalesce(sum(amount) FILTER (WHERE due_date < :today), 0) AS overdue"
                    " FROM ar_daily WHERE on_date <= :today GROUP BY tenant_id, currency"
                ),
                {"today": today},
            )
        ).all()
        sales = {
            (r.tenant_id, r.currency): Decimal(r.sales)
            for r in await session.execute(
                text(
                    "SELECT tenant_id, currency, sum(amount) AS sales FROM sales_daily"
                    " WHERE issue_date BETWEEN :first AND :today GROUP BY tenant_id, currency"
                ),
                {"first": today - timedelta(days=DSO_DAYS - 1), "today": today},
            )
        }
    overdue_labels: set[tuple[str, str]] = set()
    dso_labels: set[tuple[str, str]] = set()
    for row in ar:
        labels = (row.tenant_id, row.currency)
        OVERDUE.labels(*labels).set(float(row.overdue))
        overdue_labels.add(labels)
        days = dso_standard(Decimal(row.ar), sales.get(labels, Decimal(0)), DSO_DAYS)
        if days is not None:
            DSO.labels(*labels).set(float(days))
            dso_labels.add(labels)
    _drop_others(OVERDUE, overdue_labels)
    _drop_others(DSO, dso_labels)


_shown: dict[Gauge, set[tuple[str, str]]] = {OVERDUE: set(), DSO: set()}


def _drop_others(gauge: Gauge, keep: set[tuple[str, str]]) -> None:
    for labels in _shown[gauge] - keep:
        gauge.remove(*labels)
    _shown[gauge] = keep


class GaugeRefresh:
    """The timer's two callbacks: refresh when REFRESH_EVERY has passed on the clock (at once after a start);
    nothing is ever 'due' for /quietz."""

    def __init__(self, runtime: InsightsRuntime) -> None:
        self.runtime = runtime
        self.next_at: datetime | None = None

    async def fire_due(self, now: datetime) -> int:
        if self.next_at is None or now >= self.next_at:
            await refresh_gauges(self.runtime)
            self.next_at = now + REFRESH_EVERY
        return 0

    async def due_stats(self, now: datetime) -> tuple[int, float]:
        return 0, 0.0


def add_gauge_timer(runtime: InsightsRuntime) -> None:
    refresh = GaugeRefresh(runtime)
    runtime.add_timer("insights-gauges", refresh.fire_due, refresh.due_stats)
