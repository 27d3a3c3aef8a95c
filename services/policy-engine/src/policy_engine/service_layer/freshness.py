"""Is a tenant's ledger fresh enough to dun on? The facts come from ledger.synced and the tenant's declared
import cadence; the rule is policy_engine.domain.freshness. A stale tenant gets no step (the cases pause,
saying why) and shows in the `policy_engine_ledger_stale` gauge until it is fresh again."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Gauge

from policy_engine.adapters import repository as repo
from policy_engine.domain.freshness import SourceFreshness, stale_reason

LEDGER_STALE = Gauge(
    "policy_engine_ledger_stale",
    "1 while the tenant's ledger counts as stale and its dunning is paused (0 once fresh again)",
    ["tenant_id"],
)


async def stale_tenants(
    apg: asyncpg.Connection, tenants: Iterable[str], now: datetime, stale_after: timedelta
) -> dict[str, str]:
    """The tenants among `tenants` whose ledger is stale now, with the reason (for the timeline)."""
    sources, cadences = await repo.freshness_facts(apg, tenants)
    return stale_among(sources, cadences, now, stale_after)


def stale_among(
    sources: dict[str, list[SourceFreshness]], cadences: dict[str, timedelta], now: datetime, stale_after: timedelta
) -> dict[str, str]:
    """Of the tenants whose freshness facts these are, the stale ones with the reason; updates the gauge."""
    out: dict[str, str] = {}
    for tenant, facts in sources.items():
        reason = stale_reason(facts, cadences.get(tenant), now, stale_after)
        if reason is not None:
            out[tenant] = reason
        if facts or tenant in cadences:  # a tenant with nothing to say about freshness gets no series
            LEDGER_STALE.labels(tenant_id=tenant).set(1 if reason is not None else 0)
    return out


async def report(apg: asyncpg.Connection, tenant: str, now: datetime, stale_after: timedelta) -> dict[str, Any]:
    """What the engine knows of the tenant's ledger freshness, and whether it dunns on it now."""
    reason = (await stale_tenants(apg, [tenant], now, stale_after)).get(tenant)
    _, cadences = await repo.freshness_facts(apg, [tenant])
    cadence = cadences.get(tenant)
    return {
        "stale": reason is not None,
        "reason": reason,
        "stale_after_hours": stale_after.total_seconds() / 3600,
        "import_cadence": None if cadence is None else {"expected_every_hours": cadence.total_seconds() / 3600},
        "sources": [
            {
                "connector": r["connector"],
                "scheduled": r["scheduled"],
                "last_success_at": r["last_success_at"].isoformat() if r["last_success_at"] else None,
                "last_report_at": r["last_report_at"].isoformat(),
                "last_error": r["last_error"],
            }
            for r in await repo.ledger_sources(apg, tenant)
        ],
    }
