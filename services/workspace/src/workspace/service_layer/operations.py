"""What an admin watches: each service's dead letters, the ERP connectors' last syncs, how deliveries fail.

Each part is read from its service's API on its own; a service that does not answer leaves its part "not
available" and the rest of the page is shown (`Part`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from workspace.adapters.platform import PlatformClient, ServiceUnavailable
from workspace.domain.people import Person

# The services that consume topics, so have dead letters (ledger-sync reads ERPs, not topics).
CONSUMING = ("policy-engine", "notifier", "promise-tracker", "insights")
FAILURE_WINDOW_DAYS = 30


@dataclass
class Part:
    """One part of the page: its data, or the service that did not answer."""

    data: Any = None
    unavailable: str | None = None


@dataclass
class ChannelFailures:
    channel: str
    sent: int
    delivered: int
    bounced: int
    failed: int
    opted_out: int

    @property
    def failure_rate(self) -> Decimal | None:
        """Bounced and failed per sent, as a percentage to one place (None when nothing was sent)."""
        if not self.sent:
            return None
        return (Decimal(100 * (self.bounced + self.failed)) / self.sent).quantize(Decimal("0.1"))


@dataclass
class OperationsView:
    dead_letters: dict[str, Part] = field(default_factory=dict)
    connectors: Part = field(default_factory=Part)
    deliveries: Part = field(default_factory=Part)
    window_from: str = ""
    window_to: str = ""


async def _part(call: Any) -> Part:
    try:
        return Part(await call)
    except ServiceUnavailable as exc:
        return Part(unavailable=exc.service)


async def _failures(platform: PlatformClient, person: Person, start: str, end: str) -> list[ChannelFailures]:
    figure = await platform.get_json(
        person, "insights", "/v1/figures/steps", {"group_by": "channel", "from": start, "to": end}
    )
    out = []
    for row in figure["rows"]:
        counts = {k: int(row.get(k) or 0) for k in ("sent", "delivered", "bounced", "failed", "opted_out")}
        out.append(ChannelFailures(channel=str(row.get("channel")), **counts))
    return sorted(out, key=lambda c: (-(c.failure_rate or 0), c.channel))


async def operations_view(platform: PlatformClient, person: Person, today: Any) -> OperationsView:
    """Every part at once (the services answer in parallel)."""
    start, end = (today - timedelta(days=FAILURE_WINDOW_DAYS - 1)).isoformat(), today.isoformat()
    parts = await asyncio.gather(
        *(_part(platform.get_json(person, service, "/v1/dead-letters")) for service in CONSUMING),
        _part(platform.get_json(person, "ledger-sync", "/v1/connectors", {"limit": 200})),
        _part(_failures(platform, person, start, end)),
    )
    view = OperationsView(window_from=start, window_to=end)
    view.dead_letters = dict(zip(CONSUMING, parts[: len(CONSUMING)], strict=True))
    view.connectors, view.deliveries = parts[len(CONSUMING)], parts[len(CONSUMING) + 1]
    return view
