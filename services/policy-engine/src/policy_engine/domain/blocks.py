"""When a dunning block with an end date ends: the rule that turns what the operator typed into an instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def block_end(until: datetime | date, time_zone: str | None) -> datetime:
    """An instant as given (in UTC); a day means "until that day begins" where the debtor lives (UTC when their
    time zone is not known): "paused until 20 March" lets dunning go on from the 20th, the debtor's morning."""
    if isinstance(until, datetime):
        return until.astimezone(UTC)
    try:
        zone = ZoneInfo(time_zone) if time_zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return datetime.combine(until, time.min, zone).astimezone(UTC)
