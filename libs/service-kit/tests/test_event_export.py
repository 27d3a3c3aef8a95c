"""The event archive and the events export (dunning_kit.event_export) on a small service of their own: the kit's
plumbing tables in a schema, the router in an app, no broker (rows are marked published as the relay would).

The prune moves published rows to the archive in one statement and drops them after the archive's retention;
the export serves archive and outbox as one list, each item the envelope exactly as pydantic dumps it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import MetaData, text

from dunning_events.envelope import Envelope, new_event
from dunning_events.events import EVENT_TYPES
from dunning_events.examples import OCCURRED_AT, example_of
from dunning_kit import event_export
from dunning_kit.app import create_service_app
from dunning_kit.clock import SystemClock
from dunning_kit.page_walk import assert_page_limits, walk_pages
from dunning_kit.pages import MAX_EXPORT_LIMIT, CursorCodec
from dunning_kit.runtime import ServiceRuntime, plumbing_tables
from dunning_kit.settings import ServiceSettings
from dunning_kit.testing import TEST_API_KEYS, problem_fields

SCHEMA = "export_kit"
EXPORT = "/v1/exports/events"


@dataclass
class Exporter:
    runtime: ServiceRuntime
    api: httpx.AsyncClient
    globex: httpx.AsyncClient

    async def write(self, events: list[Envelope[Any]], *, published: bool = True) -> None:
        async with self.runtime.sessions() as session, session.begin():
            await self.runtime.outbox.add(session, events)
            if published:  # as the relay marks rows once the broker acknowledged them
                await session.execute(text("UPDATE outbox SET published_at = now() WHERE published_at IS NULL"))

    async def count(self, table: str) -> int:
        async with self.runtime.engine.connect() as conn:
            return int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


@pytest_asyncio.fixture
async def exporter(database_url: str) -> AsyncIterator[Exporter]:
    metadata = MetaData()
    plumbing_tables(metadata)
    settings = ServiceSettings(database_url=database_url, api_keys=TEST_API_KEYS)
    runtime: ServiceRuntime = ServiceRuntime(
        name="export-kit", settings=settings, clock=SystemClock(), metadata=metadata, schema=SCHEMA
    )
    async with runtime.engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    app = create_service_app(runtime, title="export-kit", description="", routers=[event_export.router])
    transport = httpx.ASGITransport(app=app)  # no lifespan: the runtime (broker, relay) is never started

    def client(key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, base_url="http://kit", headers={"Authorization": f"Bearer {key}"})

    async with client("acme-api-key") as api, client("globex-admin-key") as globex:
        yield Exporter(runtime, api, globex)
    await runtime.engine.dispose()


def example(event_type: str, tenant: str = "acme", customer: str = "C-1") -> Envelope[Any]:
    data = example_of(EVENT_TYPES[event_type]).model_copy(update={"customer_id": customer})
    return new_event(data, tenant_id=tenant, source="export-kit", occurred_at=OCCURRED_AT)


async def test_every_event_type_comes_back_from_the_export_as_the_envelope_it_was(exporter: Exporter) -> None:
    events = [example(t) for t in sorted(EVENT_TYPES)]
    half = len(events) // 2
    await exporter.write(events[:half])
    moved, dropped = await exporter.runtime.relay.prune_published(timedelta(0))
    assert (moved, dropped) == (half, 0)  # the first half now lives in the archive, the rest in the outbox
    await exporter.write(events[half:])
    await exporter.write([example("promise.created")], published=False)  # not on the broker yet: not served

    body = (await exporter.api.get(EXPORT, params={"limit": 1000})).json()
    assert body["next_cursor"] is None
    assert [i["id"] for i in body["items"]] == [str(e.id) for e in events], "oldest first, each once"
    for item, event in zip(body["items"], events, strict=True):
        # Byte for value: the same keys in the same order, and the codec's model parses it back to the event.
        assert json.dumps(item) == json.dumps(event.model_dump(mode="json"))
        model = EVENT_TYPES[item["type"]]  # as a consumer of the export picks the data's model
        assert Envelope[model].model_validate(item) == event  # type: ignore[valid-type]


async def test_a_walk_with_writes_and_prunes_between_pages_misses_nothing_and_repeats_nothing(
    exporter: Exporter,
) -> None:
    before = [example("invoice.created", customer=f"C-{n}") for n in range(23)]
    await exporter.write(before[:10])
    await exporter.runtime.relay.prune_published(timedelta(0))
    await exporter.write(before[10:])
    later: list[Envelope[Any]] = []

    async def write_and_prune(page: int) -> None:
        more = [example("payment.applied", customer=f"C-{page}")]
        later.extend(more)
        await exporter.write(more)
        await exporter.runtime.relay.prune_published(timedelta(0))  # rows cross from the outbox to the archive

    pages = await walk_pages(exporter.api.get, EXPORT, limit=4, between=write_and_prune)
    served = [i["id"] for page in pages for i in page]
    assert len(served) == len(set(served)), "nothing twice"
    assert {str(e.id) for e in before} <= set(served), "nothing that existed when the walk began is missed"
    assert served == sorted(served, key=[str(e.id) for e in [*before, *later]].index), "in the order written"


async def test_another_tenants_events_never_appear_and_the_type_filter_and_limits_hold(exporter: Exporter) -> None:
    acme = [example("promise.created"), example("consent.revoked"), example("promise.kept")]
    globex = [example("promise.created", tenant="globex")]
    await exporter.write([*acme, *globex])

    async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
        response = await client.get(EXPORT, params=params)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["items"]]

    assert await ids(exporter.api) == [str(e.id) for e in acme]
    assert await ids(exporter.globex) == [str(globex[0].id)], "any scope; its own tenant's only"
    assert await ids(exporter.api, type=["promise.kept", "promise.created"]) == [str(acme[0].id), str(acme[2].id)]
    unknown = await exporter.api.get(EXPORT, params={"type": ["promise.created", "promise.maybe"]})
    assert unknown.status_code == 422 and problem_fields(unknown.json()) == ["query.type"], unknown.text
    assert unknown.headers["content-type"] == "application/problem+json"
    assert (await exporter.api.get(EXPORT, params={"limit": MAX_EXPORT_LIMIT})).status_code == 200
    other_list = CursorCodec("notifier.deliveries").encode(("x",))
    await assert_page_limits(exporter.api.get, EXPORT, other_list, max_limit=MAX_EXPORT_LIMIT)
    anonymous = await exporter.api.get(EXPORT, headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_the_prune_moves_only_published_rows_and_drops_archived_ones_after_the_archive_retention(
    exporter: Exporter,
) -> None:
    relay = exporter.runtime.relay
    await exporter.write([example("promise.created") for _ in range(3)])
    await exporter.write([example("promise.kept")], published=False)
    assert await relay.prune_published() == (0, 0), "published within the outbox's retention: kept there"
    assert await relay.prune_published(timedelta(0)) == (3, 0)
    assert (await exporter.count("outbox"), await exporter.count("event_archive")) == (1, 3)
    relay.archive_retention = timedelta(0)
    assert await relay.prune_published(timedelta(0)) == (0, 3)
    assert (await exporter.count("outbox"), await exporter.count("event_archive")) == (1, 0)


async def test_a_service_that_does_not_serve_the_export_deletes_published_rows_instead_of_archiving_them(
    exporter: Exporter,
) -> None:
    # ledger-sync's way: no events export, so nothing is kept beyond the outbox's hour (nor out of its erasure's
    # reach); the same tables, another app.
    runtime = exporter.runtime
    create_service_app(runtime, title="ledger-like", description="", routers=[])
    await exporter.write([example("customer.upserted")])
    assert await runtime.relay.prune_published(timedelta(0)) == (1, 0)
    assert (await exporter.count("outbox"), await exporter.count("event_archive")) == (0, 0)
