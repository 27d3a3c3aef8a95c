"""Backfill and rebuild: the read model of a tenant built from the other services' exports, then kept by the
stream, with no gap and no double count.

- Every source (adapters/export_client.SOURCES) is walked page by page; each page is applied in one transaction
  together with its `backfills` row (cursor, items), so a backfill stopped anywhere goes on from the page after the
  last one applied.
- A page goes through the same appliers as the stream (adapters/apply_*.py) and its rows carry the same natural
  keys, so what the stream also delivered (before, during or after) is one row. The inbox is not used: a rebuild
  re-applies events whose ids the stream recorded long ago. Ledger-sync's state is the book of record: its rows
  restate what the model holds (`from_export`), under the version guard of the invoice snapshot.
- A rebuild deletes the tenant's read model and backfills again; the stream goes on meanwhile, and what it brings
  about an invoice not backfilled yet is kept and counted once the invoice arrives.
- Two pages of ledger-sync are applied at a time, each in its own transaction: while one writes the rows only it
  has (its invoices and their changes), the one before it finishes. A page commits only after the page before it
  (its `turn`, adapters/apply_ledger.py), so the saved cursor never passes a page that was not applied. One
  tenant's backfill runs in one process at a time, across replicas (an advisory lock held for the run).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_events.envelope import Envelope, EventData
from dunning_events.events import EVENT_TYPES
from dunning_kit.clock import Clock
from dunning_kit.runtime import ServiceRuntime
from dunning_kit.settings import parse_pairs
from insights.adapters.apply_ledger import Turn, apply_ledger, set_customer_terms
from insights.adapters.export_client import (
    INVOICES,
    SOURCES,
    ExportClient,
    ExportFailure,
    ExportSource,
    parse_export_urls,
)
from insights.domain import facts as f
from insights.service_layer.handlers import FactBatch, gather_envelopes

log = logging.getLogger("insights.backfill")

# What a rebuild deletes: every table derived from the facts (the tenant's reporting currency and FX rates are
# what the tenant supplied, not facts, and stay).
READ_MODEL_TABLES = (
    "invoice_changes", "ar_daily", "sales_daily", "disputes", "invoices", "customers", "promises", "plans",
    "step_invoices", "steps", "deliveries", "consent_revocations", "contact_holds", "backfills",
)  # fmt: skip

SAVE_POSITION = text(
    "INSERT INTO backfills (tenant_id, source, cursor, items, started_at, finished_at, error) "
    "VALUES (:tenant, :source, :cursor, :items, :now, CASE WHEN :done THEN CAST(:now AS timestamptz) END, NULL) "
    "ON CONFLICT (tenant_id, source) DO UPDATE SET cursor = excluded.cursor, "
    "items = backfills.items + excluded.items, finished_at = excluded.finished_at, error = NULL"
)
START = text(
    "INSERT INTO backfills (tenant_id, source, cursor, items, started_at) VALUES (:tenant, :source, NULL, 0, :now) "
    "ON CONFLICT (tenant_id, source) DO UPDATE SET cursor = NULL, items = 0, started_at = excluded.started_at, "
    "finished_at = NULL, error = NULL"
)
FAILED = text("UPDATE backfills SET error = :error WHERE tenant_id = :tenant AND source = :source")
TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
UNLOCK = text("SELECT pg_advisory_unlock(:key)")
STATUS = text(
    "SELECT source, items, started_at, finished_at, error FROM backfills WHERE tenant_id = :tenant ORDER BY source"
)


# Pages of a ledger source after which the backfill refreshes the statistics (a new tenant grows fast at first).
ANALYZE_AFTER_PAGES = frozenset({1, 10, 100})
# Ledger pages applied at a time (each its own transaction and connection): one writes, the one before finishes.
PAGES_AT_A_TIME = 2


def run_lock_key(tenant_id: str) -> int:
    """The advisory lock a tenant's backfill run holds (in whichever replica runs it)."""
    return zlib.crc32(f"insights.backfill:{tenant_id}".encode())


class NoExportKey(Exception):
    """The tenant has no key in INSIGHTS_EXPORT_KEYS: nothing can be read for it."""


def ledger_facts(tenant_id: str, source: ExportSource, items: list[dict[str, Any]]) -> f.Facts:
    facts = f.Facts()
    add = f.add_export_customer if source.name.endswith("customers") else f.add_export_invoice
    for item in items:
        add(facts, tenant_id, item)
    return facts


def archived_envelopes(tenant_id: str, items: list[dict[str, Any]]) -> list[Envelope[EventData]]:
    """The archive's CloudEvents envelopes, parsed as the consumer parses them. Another tenant's event, or a type
    this build does not know (a newer producer), is passed over: it carries no fact this model keeps."""
    envelopes: list[Envelope[EventData]] = []
    for item in items:
        event_type = EVENT_TYPES.get(item.get("type", ""))
        if item.get("tenant_id") == tenant_id and event_type is not None:
            envelopes.append(Envelope[event_type].model_validate(item))  # type: ignore[valid-type]
    return envelopes


async def apply_page(
    session: AsyncSession,
    tenant_id: str,
    source: ExportSource,
    items: list[dict[str, Any]],
    *,
    last: bool = False,
    turn: Turn | None = None,
) -> None:
    """One export page, in the caller's transaction, through the stream's appliers (`last`: the source's last).
    `turn` is awaited before the page writes what the page before it may also write."""
    if source.ledger:
        await apply_ledger(session, ledger_facts(tenant_id, source, items), from_export=True, turn=turn)
        if last and source is INVOICES:
            await set_customer_terms(session, tenant_id)
        return
    if turn is not None:
        await turn()
    batch = FactBatch(session)
    await gather_envelopes(batch, archived_envelopes(tenant_id, items))
    await batch.flush()


class Backfiller:
    """Runs at most one backfill per tenant at a time, in the service's process."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: ExportClient,
        clock: Clock,
        keys: dict[str, str],
        limit: int,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.clock = clock
        self.keys = keys
        self.limit = limit
        self.running: dict[str, asyncio.Task[None]] = {}

    def is_running(self, tenant_id: str) -> bool:
        task = self.running.get(tenant_id)
        return task is not None and not task.done()

    def key_of(self, tenant_id: str) -> str:
        key = self.keys.get(tenant_id)
        if key is None:
            raise NoExportKey(tenant_id)
        return key

    async def start(self, tenant_id: str, *, rebuild: bool = False) -> None:
        """Start (or go on with) the tenant's backfill in the background. Unfinished sources go on from their
        cursor; when every source had finished, a new backfill starts from the beginning. `rebuild` first deletes
        the tenant's read model."""
        self.key_of(tenant_id)
        if self.is_running(tenant_id):
            return
        async with self.sessions() as session, session.begin():
            if rebuild:
                for table in READ_MODEL_TABLES:
                    await session.execute(text(f"DELETE FROM {table} WHERE tenant_id = :t"), {"t": tenant_id})
            rows = (await session.execute(STATUS, {"tenant": tenant_id})).all()
            if rebuild or not rows or all(r.finished_at is not None for r in rows):
                for source in SOURCES:
                    await session.execute(START, {"tenant": tenant_id, "source": source.name, "now": self.clock.now()})
        self.running[tenant_id] = asyncio.create_task(self.run(tenant_id), name=f"insights-backfill-{tenant_id}")

    async def run(self, tenant_id: str) -> None:
        """Walk every unfinished source to its end; an error is kept on the source's row and stops the run. Another
        replica running this tenant's backfill already: this one leaves it to that one."""
        lock = {"key": run_lock_key(tenant_id)}
        async with self.sessions() as holder:
            # A connection of its own for the run, outside any transaction: the lock is the connection's.
            conn = await holder.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            if not (await conn.execute(TRY_LOCK, lock)).scalar():
                log.info("the backfill of %s runs in another replica", tenant_id)
                return
            try:
                await self._run(tenant_id)
            finally:
                await conn.execute(UNLOCK, lock)

    async def _run(self, tenant_id: str) -> None:
        key = self.key_of(tenant_id)
        for source in SOURCES:
            async with self.sessions() as session:
                row = (
                    await session.execute(
                        text("SELECT cursor, finished_at FROM backfills WHERE tenant_id = :t AND source = :s"),
                        {"t": tenant_id, "s": source.name},
                    )
                ).first()
            if row is None or row.finished_at is not None:
                continue
            try:
                await self.walk(tenant_id, key, source, row.cursor)
            except ExportFailure as exc:
                await self._stopped(tenant_id, source, str(exc))
                return
            except Exception as exc:  # a page the appliers refused (an item of a newer or broken export)
                log.exception("backfill of %s: a page of %s could not be applied", tenant_id, source.name)
                await self._stopped(tenant_id, source, f"a page could not be applied ({type(exc).__name__}: {exc})")
                return

    async def _stopped(self, tenant_id: str, source: ExportSource, error: str) -> None:
        """The source keeps its cursor (the last page applied) and says why it stopped."""
        log.warning("backfill of %s stopped: %s", tenant_id, error)
        async with self.sessions() as session, session.begin():
            await session.execute(FAILED, {"tenant": tenant_id, "source": source.name, "error": error})

    async def walk(self, tenant_id: str, key: str, source: ExportSource, cursor: str | None) -> None:
        """Apply the source's pages in order, reading the next page while pages are applied (the export and the
        database then work at the same time), PAGES_AT_A_TIME ledger pages at once; each commits after the one
        before it, and a failed page fails the ones after it (their turn never comes)."""
        pages = 0
        at_a_time = PAGES_AT_A_TIME if source.ledger else 1
        applying: list[asyncio.Task[None]] = []
        before: asyncio.Future[None] | None = None  # the commit of the page before
        ahead = asyncio.ensure_future(self.client.page(source, key, cursor, self.limit))
        try:
            while True:
                items, next_cursor = await ahead
                if next_cursor is not None:
                    ahead = asyncio.ensure_future(self.client.page(source, key, next_cursor, self.limit))
                committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                applying.append(
                    asyncio.create_task(self._apply(tenant_id, source, items, next_cursor, before, committed))
                )
                before = committed
                pages += 1
                refresh = source.ledger and pages in ANALYZE_AFTER_PAGES
                while len(applying) >= at_a_time or (applying and (refresh or next_cursor is None)):
                    await applying.pop(0)
                if refresh:
                    await self.analyze()
                if next_cursor is None:
                    return
        finally:
            for task in [*applying, ahead]:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*applying, ahead, return_exceptions=True)

    async def _apply(
        self,
        tenant_id: str,
        source: ExportSource,
        items: list[dict[str, Any]],
        next_cursor: str | None,
        before: Awaitable[None] | None,
        committed: asyncio.Future[None],
    ) -> None:
        """One page and the position after it, in one transaction (a stopped backfill goes on from the next),
        committed after the page `before` it; `committed` tells the page after it."""

        async def turn() -> None:
            if before is not None:
                await before

        try:
            await self._apply_page(tenant_id, source, items, next_cursor, turn)
        except BaseException as exc:
            if isinstance(exc, Exception):
                committed.set_exception(exc)
                committed.exception()  # retrieved: the page after it raises it too, or nobody waits for it
            else:
                committed.cancel()
            raise
        committed.set_result(None)

    async def _apply_page(
        self, tenant_id: str, source: ExportSource, items: list[dict[str, Any]], next_cursor: str | None, turn: Turn
    ) -> None:
        async with self.sessions() as session, session.begin():
            await apply_page(session, tenant_id, source, items, last=next_cursor is None, turn=turn)
            await session.execute(
                SAVE_POSITION,
                {"tenant": tenant_id, "source": source.name, "cursor": next_cursor, "items": len(items),
                 "now": self.clock.now(), "done": next_cursor is None},
            )  # fmt: skip

    async def analyze(self) -> None:
        """Fresh statistics for the tables a backfill grows: without them a tenant new to the model looks empty
        to the planner, which may then reach an invoice's rows through another index on tenant_id (one scan of
        the tenant per invoice) until autovacuum analyzes the tables."""
        async with self.sessions() as session, session.begin():
            await session.execute(text("ANALYZE invoices, invoice_changes, ar_daily, sales_daily"))

    async def status(self, tenant_id: str) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = (await session.execute(STATUS, {"tenant": tenant_id})).all()
        running = self.is_running(tenant_id)
        return [
            {
                "source": r.source, "items": r.items, "started_at": r.started_at, "finished_at": r.finished_at,
                "error": r.error, "state": "finished" if r.finished_at else ("failed" if r.error else
                                                                               ("running" if running else "stopped")),
            }
            for r in rows
        ]  # fmt: skip

    async def stop(self) -> None:
        for task in self.running.values():
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)
        await self.client.close()


_BACKFILLERS: WeakKeyDictionary[ServiceRuntime[Any, Any], Backfiller] = WeakKeyDictionary()


def attach_backfiller(runtime: ServiceRuntime[Any, Any], client: ExportClient | None = None) -> Backfiller:
    """The runtime's Backfiller (built from its settings), stopped with the service."""
    settings = runtime.settings
    backfiller = Backfiller(
        runtime.sessions,
        client or ExportClient(parse_export_urls(settings.insights_export_urls), timeout=settings.insights_export_timeout_s),
        runtime.clock,
        parse_pairs(settings.insights_export_keys, "tenant=api-key"),
        settings.insights_export_page_limit,
    )  # fmt: skip
    _BACKFILLERS[runtime] = backfiller
    runtime.on_stop(backfiller.stop, before_parts=True)
    return backfiller


def backfiller_of(runtime: ServiceRuntime[Any, Any]) -> Backfiller:
    return _BACKFILLERS[runtime]


async def backfill_tenant(
    sessions: async_sessionmaker[AsyncSession],
    client: ExportClient,
    clock: Clock,
    tenant_id: str,
    key: str,
    *,
    limit: int = 5000,
) -> None:
    """Backfill one tenant to the end, in the caller's task (the benchmark's and the tests' way in)."""
    backfiller = Backfiller(sessions, client, clock, {tenant_id: key}, limit)
    async with sessions() as session, session.begin():
        for source in SOURCES:
            await session.execute(START, {"tenant": tenant_id, "source": source.name, "now": clock.now()})
    await backfiller.run(tenant_id)
