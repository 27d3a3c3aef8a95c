"""The step's contact window: may a message be handed to a provider at this instant? (pure)

The policy engine decides quiet hours when it plans a step and sends the window along
(`deliver_from`, `deliver_until` on dunning.step.due, instants in UTC). The notifier enforces it at the send:
a queue, a restart or a slow provider can push a send past the window's end, and then the message must wait
for a new window (dunning.step.replanned) instead of reaching the debtor at 21:30.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class OutsideWindow:
    """Why a delivery is held: the instant it was reached lies outside its window."""

    reason: str
    deliver_from: datetime | None
    deliver_until: datetime | None


def _instant(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def window_of(step: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """(deliver_from, deliver_until) of a step as stored (JSON: ISO strings, or absent)."""
    return _instant(step.get("deliver_from")), _instant(step.get("deliver_until"))


def customer_zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _local(instant: datetime, zone: tzinfo, other: datetime) -> str:
    """HH:MM in the customer's zone; with the date when `other` falls on another local day."""
    here = instant.astimezone(zone)
    same_day = here.date() == other.astimezone(zone).date()
    return here.strftime("%H:%M") if same_day else here.strftime("%Y-%m-%d %H:%M")


def outside_window(step: Mapping[str, Any], now: datetime, zone: tzinfo) -> OutsideWindow | None:
    """None when `now` lies in [deliver_from, deliver_until); otherwise why not, in the debtor's local time.

    The end is exclusive: a window closing at 21:00 admits 20:59:59 and not 21:00."""
    start, end = window_of(step)
    if end is not None and now >= end:
        reason = (
            f"reached at {_local(now, zone, end)} local, after the contact window closed at "
            f"{_local(end, zone, now)} (deliver_until {end.isoformat()})"
        )
        return OutsideWindow(reason, start, end)
    if start is not None and now < start:
        reason = (
            f"reached at {_local(now, zone, start)} local, before the contact window opens at "
            f"{_local(start, zone, now)} (deliver_from {start.isoformat()})"
        )
        return OutsideWindow(reason, start, end)
    return None
