"""When a tenant's ledger is too old to dun on. Pure: the repository loads the facts, this decides.

Only silence that means something makes a ledger stale: a connector that syncs on a schedule and has not
succeeded for too long, or — for a tenant that imports files or pushes through the API — an import that did
not arrive within the cadence the tenant declared. A tenant that never declared one is never stale by silence:
its ledger is whatever it last told us.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SourceFreshness:
    """What ledger.synced said of one connector (or the `csv` import) of a tenant."""

    connector: str
    scheduled: bool
    last_success_at: datetime | None


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g}h"


def stale_reason(
    sources: list[SourceFreshness], import_every: timedelta | None, now: datetime, stale_after: timedelta
) -> str | None:
    """Why the ledger is stale now, or None when it is fresh enough to dun on."""
    for s in sorted(sources, key=lambda s: s.connector):
        if not s.scheduled:
            continue
        if s.last_success_at is None:
            return f"connector {s.connector} never completed a successful sync"
        if now - s.last_success_at > stale_after:
            return (
                f"connector {s.connector} last synced successfully at {s.last_success_at.isoformat()}, "
                f"more than {_hours(stale_after)} ago"
            )
    if import_every is None:
        return None
    imported = [s.last_success_at for s in sources if not s.scheduled and s.last_success_at is not None]
    if not imported:
        return f"no import has completed yet, and the tenant expects one every {_hours(import_every)}"
    last = max(imported)
    if now - last > import_every:
        return (
            f"the last import finished at {last.isoformat()}, more than {_hours(import_every)} ago "
            f"(the tenant expects one every {_hours(import_every)})"
        )
    return None
