"""Fresh planner statistics while the read model grows fast (a new tenant's stream, a first backfill).

The appliers reach the rows of a batch's invoices by their primary keys, but a table whose statistics are older
than most of its rows looks nearly empty to the planner, which then reaches them through another index on
tenant_id (a scan of the tenant per statement): measured on a fresh model, a batch of the stream took 3-10 times
longer until autovacuum got to the tables (a minute or more later). A runtime timer analyzes a read-model table as
soon as it changed by more than it held when it was last analyzed (and by at least STALE_AFTER rows): a few
ANALYZEs while a tenant's model grows, none once it is steady (autovacuum keeps it then).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from insights.service_layer.objects import InsightsRuntime

log = logging.getLogger("insights.statistics")

# The tables the appliers read by key while they grow.
GROWING = (
    "invoices", "invoice_changes", "ar_daily", "sales_daily", "customers", "steps", "step_invoices", "deliveries",
    "promises", "plans", "disputes",
)  # fmt: skip
STALE_AFTER = 1000
STALE = text(
    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "WHERE s.schemaname = current_schema() AND s.relname = ANY(CAST(:tables AS text[])) "
    "AND s.n_mod_since_analyze > greatest(CAST(:floor AS real), c.reltuples) ORDER BY s.relname"
)


async def analyze_stale(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    """ANALYZE the read-model tables whose statistics are stale by the rule above; returns their names."""
    async with sessions() as session:
        stale = list((await session.execute(STALE, {"tables": list(GROWING), "floor": STALE_AFTER})).scalars())
    for table in stale:
        async with sessions() as session, session.begin():
            await session.execute(text(f"ANALYZE {table}"))
    return stale


class StatisticsKeeper:
    """The timer's callbacks: look for stale statistics on every tick; nothing is ever 'due' for /quietz."""

    def __init__(self, runtime: InsightsRuntime) -> None:
        self.runtime = runtime

    async def fire_due(self, now: datetime) -> int:
        analyzed = await analyze_stale(self.runtime.sessions)
        if analyzed:
            log.debug("analyzed %s", ", ".join(analyzed))
        return 0

    async def due_stats(self, now: datetime) -> tuple[int, float]:
        return 0, 0.0


def add_statistics_timer(runtime: InsightsRuntime) -> None:
    keeper = StatisticsKeeper(runtime)
    runtime.add_timer("insights-statistics", keeper.fire_due, keeper.due_stats)
