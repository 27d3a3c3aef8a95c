"""The dashboard's figures, read from insights' figure APIs (insights is the one source of every number here).

Each figure is read on its own (`reads.part`), so a figure insights cannot answer leaves only its panel empty.
The amounts stay the decimal strings insights sent; the page formats them per language (`domain.formats`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from workspace.adapters.platform import PlatformClient, ServiceUnavailable
from workspace.domain.people import Person
from workspace.service_layer.reads import Part, Refused, get_or_refused, part

TREND_MONTHS = 12  # the DSO and CEI trends: this month and the eleven before it


@dataclass(frozen=True)
class Filters:
    currency: str | None = None
    segment: str | None = None

    def params(self) -> dict[str, str]:
        return {k: v for k, v in (("currency", self.currency), ("segment", self.segment)) if v}


@dataclass
class Dashboard:
    filters: Filters
    today: date
    aging: Part[list[dict[str, Any]]]  # rows: currency, bucket, amount, count
    dso: Part[list[dict[str, Any]]]  # monthly rows: from, to, currency, dso_standard, ...
    cei: Part[list[dict[str, Any]]]  # monthly rows: from, to, currency, cei, ...
    month: Part[list[dict[str, Any]]]  # this month's collection rows: currency, collected, overdue, ...
    promises: Part[list[dict[str, Any]]]  # the last 90 days' promises: currency, kept_rate, made, kept, ...
    contacts: Part[list[dict[str, Any]]]  # this month, one row per channel: channel, sent, held
    refused: dict[str, str] = field(default_factory=dict)  # a filter insights does not know -> why


def contacts_per_channel(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per channel: insights' contact figure is a series (a row per period and channel, every period of
    the query filled in, daily unless asked otherwise), so a month of it names each channel once a day. The
    counts are whole numbers and are added exactly; the channels keep insights' order."""
    summed: dict[str, dict[str, Any]] = {}
    for row in rows:
        channel = str(row.get("channel") or "")
        total = summed.setdefault(channel, {"channel": channel, "sent": 0, "held": 0})
        total["sent"] += int(row.get("sent") or 0)
        total["held"] += int(row.get("held") or 0)
    return list(summed.values())


def trend_start(today: date, months: int = TREND_MONTHS) -> date:
    """The first day of the month `months - 1` months before today's."""
    index = today.year * 12 + today.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)


async def dashboard(platform: PlatformClient, person: Person, filters: Filters, today: date) -> Dashboard:
    scope = filters.params()
    month_start = today.replace(day=1)
    trend = {"from": trend_start(today).isoformat(), "to": today.isoformat(), "interval": "month"}
    this_month = {"from": month_start.isoformat(), "to": today.isoformat()}
    refused: dict[str, str] = {}

    async def rows(path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            answer = await get_or_refused(platform, person, "insights", path, params)
        except Refused as exc:
            refused.update(exc.errors)
            raise ServiceUnavailable("insights", f"refused the filters: {exc.detail}") from exc
        found: list[dict[str, Any]] = answer["rows"]
        return found

    async def contacts_of(params: dict[str, Any]) -> list[dict[str, Any]]:
        return contacts_per_channel(await rows("/v1/figures/contacts", params))

    aging, dso, cei, month, promises, contacts = await asyncio.gather(
        part(rows("/v1/figures/aging", {**scope, "as_of": today.isoformat()})),
        part(rows("/v1/figures/dso", {**scope, **trend})),
        part(rows("/v1/figures/cei", {**scope, **trend})),
        part(rows("/v1/figures/collection", {**scope, **this_month})),
        part(rows("/v1/figures/promises", {**scope, "to": today.isoformat()})),
        # Contacts are not per currency: only the segment narrows them. One interval for the month (insights'
        # default is a row per day), and the rows still summed per channel whatever the series holds.
        part(contacts_of({**({"segment": filters.segment} if filters.segment else {}),
                       **this_month, "group_by": "channel", "interval": "month"})),
    )  # fmt: skip
    return Dashboard(filters, today, aging, dso, cei, month, promises, contacts, refused)
