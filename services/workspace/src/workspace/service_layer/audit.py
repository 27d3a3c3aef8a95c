"""Who changed what, across the services: each one's audit log (`GET /v1/audit-log`, admin), merged newest first.

Each service keeps its own log, in the same transaction as the change, so the workspace only reads and merges; a
service that does not answer leaves its entries out and the page says which.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from workspace.adapters.platform import PlatformClient, ServiceUnavailable
from workspace.domain.people import Person

AUDITED = ("ledger-sync", "policy-engine", "notifier", "promise-tracker", "insights")
SHOWN = 100  # the latest entries of each service the page merges


@dataclass
class AuditView:
    entries: list[dict[str, Any]] = field(default_factory=list)  # each with its `service`
    unavailable: list[str] = field(default_factory=list)


async def latest(platform: PlatformClient, person: Person, *, of_person: str | None = None) -> AuditView:
    """The latest SHOWN entries of every service (of one person, by subject), merged newest first."""
    params: dict[str, Any] = {"limit": SHOWN, **({"person": of_person} if of_person else {})}

    async def one(service: str) -> list[dict[str, Any]] | str:
        try:
            page = await platform.get_json(person, service, "/v1/audit-log", params)
        except ServiceUnavailable:
            return service
        return [{**entry, "service": service} for entry in page["items"]]

    view = AuditView()
    for found in await asyncio.gather(*(one(s) for s in AUDITED)):
        if isinstance(found, str):
            view.unavailable.append(found)
        else:
            view.entries.extend(found)
    view.entries.sort(key=lambda e: (e["at"], e["id"]), reverse=True)
    return view
