"""The services a page test reads, started in-process on one database, broker and simulated clock, with the
workspace pointed at them (the services a test does not start point at a closed port: their parts of a page
show "could not be loaded"). One per test module: starting services is the expensive part of these tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html.parser import HTMLParser

import httpx

from dunning_kit.clock import SimulatedClock
from dunning_kit.embedded import free_port
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, Platform, PostgresBackend, RunningService, start_platform, start_service
from workspace.adapters.platform import SERVICES
from workspace.domain.people import Person
from workspace.service_layer.sessions import SignedIn
from workspace.testing import session_cookie


@dataclass
class PagesPlatform:
    services: Platform
    workspace: RunningService
    clock: SimulatedClock

    def api(self, service: str, key: str = "acme-admin-key") -> httpx.AsyncClient:
        return self.services[service].client(key)

    async def browser(self, person: Person) -> tuple[httpx.AsyncClient, SignedIn]:
        cookies, signed = await session_cookie(self.workspace.runtime, person)
        client = httpx.AsyncClient(
            base_url=self.workspace.base_url, cookies=cookies, follow_redirects=False, timeout=30
        )
        return client, signed

    async def quiet(self) -> None:
        await self.services.wait_until_quiet()


@asynccontextmanager
async def pages_platform(pg_backend: PostgresBackend, only: Iterable[str]) -> AsyncIterator[PagesPlatform]:
    broker = BrokerBackend.embedded()
    clock = SimulatedClock(SIM_START)
    database_url = pg_backend.fresh_database()
    try:
        services = await start_platform(
            database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock, only=list(only)
        )
        try:
            closed = f"http://127.0.0.1:{free_port()}"
            urls = ",".join(
                f"{s}={services.services[s].base_url if s in services.services else closed}" for s in SERVICES
            )
            workspace = await start_service(
                spec("workspace"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
                overrides={"workspace_cookie_secure": False, "workspace_api_keys": "acme=acme-admin-key",
                           "workspace_service_urls": urls},
            )  # fmt: skip
            try:
                yield PagesPlatform(services, workspace, clock)
            finally:
                await workspace.stop()
        finally:
            await services.stop()
    finally:
        broker.stop()


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[Table] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.found.append(Table({k: v or "" for k, v in attrs}, []))
        elif tag == "tr" and self.found:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(re.sub(r"[ \t\r\n]+", " ", "".join(self._cell)).strip(" \t\r\n"))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.found[-1].rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@dataclass
class Table:
    attrs: dict[str, str]
    rows: list[list[str]]  # the header row first, each cell's text with whitespace collapsed

    @property
    def body(self) -> list[list[str]]:
        return self.rows[1:]


def tables(html: str, **attrs: str) -> list[Table]:
    """The page's tables whose attributes include `attrs` (`class_` for class)."""
    parser = _Tables()
    parser.feed(html)
    wanted = {k.rstrip("_"): v for k, v in attrs.items()}
    return [t for t in parser.found if all(t.attrs.get(k) == v for k, v in wanted.items())]


class _Controls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.labels: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag in ("input", "select", "textarea") and found.get("type") not in ("hidden", "submit"):
            self.controls.append(found)
        elif tag == "label" and found.get("for"):
            self.labels.add(found["for"])


def unlabelled(html: str) -> list[dict[str, str]]:
    """The form controls of a page without a `<label for>` of their own (ids must be unique too)."""
    parser = _Controls()
    parser.feed(html)
    ids = [c.get("id", "") for c in parser.controls]
    return [c for c in parser.controls if not c.get("id") or c["id"] not in parser.labels or ids.count(c["id"]) > 1]
