"""The other services' export APIs, read page by page over HTTP with the tenant's export key:
ledger-sync's customers and invoices (its state: the book of record), and the events policy-engine, notifier and
promise-tracker published (their event archive), each a cursor page `{items, next_cursor}`.

A source that cannot be reached or answers anything but a page fails with ExportFailure naming the source and
what it answered: the backfill stops there and keeps its cursor, so it goes on from the same page next time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from dunning_kit.settings import parse_pairs


@dataclass(frozen=True)
class ExportSource:
    """One list a backfill walks: `service` answers it at `path`."""

    name: str  # the backfills row's `source`
    service: str
    path: str
    ledger: bool  # ledger-sync's state (invoices, customers) rather than archived events


INVOICES = ExportSource("ledger-sync.invoices", "ledger-sync", "/v1/exports/invoices", ledger=True)
# In the order a backfill walks them: the customers and invoices first, so the facts about them find them.
SOURCES: tuple[ExportSource, ...] = (
    ExportSource("ledger-sync.customers", "ledger-sync", "/v1/exports/customers", ledger=True),
    INVOICES,
    ExportSource("policy-engine.events", "policy-engine", "/v1/exports/events", ledger=False),
    ExportSource("notifier.events", "notifier", "/v1/exports/events", ledger=False),
    ExportSource("promise-tracker.events", "promise-tracker", "/v1/exports/events", ledger=False),
)
SERVICES = ("ledger-sync", "policy-engine", "notifier", "promise-tracker")


class ExportFailure(Exception):
    """A source gave no usable page."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source


def parse_export_urls(text: str) -> dict[str, str]:
    """The four services' base URLs (`service=http(s)://host:port`, every service named once)."""
    urls = parse_pairs(text, "service=http(s)://host:port")
    for name, url in urls.items():
        parts = urlsplit(url)
        if name not in SERVICES:
            raise ValueError(f"{name!r} is not one of {', '.join(SERVICES)}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name}: {url!r} is not an http(s) URL")
    missing = [s for s in SERVICES if s not in urls]
    if missing:
        raise ValueError(f"no URL for {', '.join(missing)}")
    return {name: url.rstrip("/") for name, url in urls.items()}


class ExportClient:
    """Reads export pages; one connection pool for the service's backfills."""

    def __init__(
        self, base_urls: dict[str, str], *, timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_urls = base_urls
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def page(
        self, source: ExportSource, key: str, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        url = self.base_urls[source.service] + source.path
        try:
            answer = await self._http.get(url, params=params, headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError as exc:
            raise ExportFailure(source.name, f"could not be reached ({type(exc).__name__}: {exc})") from exc
        if answer.status_code != 200:
            raise ExportFailure(source.name, f"answered {answer.status_code}: {answer.text[:300]}")
        try:
            body = answer.json()
            items, next_cursor = body["items"], body["next_cursor"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ExportFailure(source.name, f"answered no page ({exc})") from exc
        if not isinstance(items, list) or not (next_cursor is None or isinstance(next_cursor, str)):
            raise ExportFailure(source.name, "answered no page (items must be a list, next_cursor a string or null)")
        return items, next_cursor

    async def close(self) -> None:
        await self._http.aclose()
