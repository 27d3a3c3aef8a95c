"""The machinery every connector shares: run a sync page by page (cursor saved with each page's effects),
apply ERP objects through the Ledger, quarantine what cannot be applied, fetch missing references,
process stored webhook notices, reconcile the ledger against the ERP, record freshness.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dunning_events.money import to_minor
from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from dunning_kit.data_keys import DEV_DATA_ENCRYPTION_KEYS, Keyring, StoredSecretsHealth, UndecryptableSecret
from dunning_kit.outbound import OutboundPolicy
from ledger_sync.adapters import orm
from ledger_sync.adapters.credentials import credential_ref, open_credentials, seal_credentials, undecryptable
from ledger_sync.connectors.base import (
    APPLY_ORDER,
    CUSTOMER,
    INVOICE,
    Change,
    Connector,
    CreditNoteGone,
    ErpObject,
    InvoiceGone,
    MappingError,
    Notice,
    PaymentGone,
    UpsertCreditNote,
    UpsertCustomer,
    UpsertInvoice,
    UpsertPayment,
)
from ledger_sync.connectors.http import ErpError, Sleep
from ledger_sync.domain.ledger import LedgerRuleViolation
from ledger_sync.service_layer.freshness import record_sync
from ledger_sync.service_layer.ledger import Ledger, NotFound
from ledger_sync.service_layer.personal_data import drop_erased_payloads

log = logging.getLogger("ledger_sync.sync")


@dataclass
class Connection:
    tenant_id: str
    connector: str
    external_account: str | None
    config: dict[str, Any]
    credentials: dict[str, Any]
    cursor: dict[str, Any]


# Builds a connector for one connection: (connection, save_credentials, sleep, clock, egress) -> Connector
ConnectorFactory = Callable[
    [Connection, Callable[[dict[str, Any]], Awaitable[None]], Sleep, Clock, OutboundPolicy], Connector
]


@dataclass
class SyncOutcome:
    connector: str
    succeeded: bool
    pages: int = 0
    changed: int = 0
    quarantined: int = 0
    error: str | None = None
    skipped: bool = False
    drift: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Run:
    """What one apply pass did."""

    changed: int = 0
    quarantined: int = 0
    balances: list[tuple[UpsertInvoice, ErpObject]] = field(default_factory=list)


def _jsonable(payload: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(payload, default=str))


class SyncService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        outbox: OutboxWriter,
        clock: Clock,
        factories: Mapping[str, ConnectorFactory],
        sleep: Sleep = asyncio.sleep,
        notice_batch: int = 200,
        egress: OutboundPolicy | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.outbox = outbox
        self.clock = clock
        self.factories = dict(factories)
        self.sleep = sleep  # tests swap in a recorder so backoff delays are seen, not waited
        self.notice_batch = notice_batch
        self.egress = egress or OutboundPolicy()  # which ERP addresses a connector may call
        # Credentials are sealed at rest (adapters/credentials.py); readiness is false while any does not open.
        self.keyring = keyring or Keyring.parse(DEV_DATA_ENCRYPTION_KEYS)
        self.secrets = StoredSecretsHealth(lambda: undecryptable(self.sessions, self.keyring))
        # Claimed work still being applied counts as due, so "quiet" means done, not merely claimed.
        self._notices_in_flight = 0
        self._syncs_in_flight = 0

    # ------------------------------------------------------------------ connections

    async def connection(self, tenant_id: str, name: str) -> Connection | None:
        c = orm.connections.c
        async with self.sessions() as session:
            row = (
                await session.execute(select(orm.connections).where(c.tenant_id == tenant_id, c.connector == name))
            ).first()
        if row is None or name not in self.factories:
            return None
        try:
            credentials = open_credentials(self.keyring, row.tenant_id, row.connector, row.credentials)
        except UndecryptableSecret as exc:
            self.secrets.failed(exc)  # readiness false, logged once for this record
            raise
        for name_of_secret in credentials:
            self.secrets.opened(credential_ref(row.tenant_id, row.connector, name_of_secret))
        return Connection(row.tenant_id, row.connector, row.external_account, dict(row.config),
                          credentials, dict(row.cursor))  # fmt: skip

    def seal(self, tenant_id: str, connector: str, credentials: Mapping[str, Any]) -> dict[str, str]:
        """Credentials as they are stored: each value encrypted under the newest data-encryption key."""
        return seal_credentials(self.keyring, tenant_id, connector, credentials)

    def build(self, conn: Connection) -> Connector:
        async def save_credentials(credentials: dict[str, Any]) -> None:
            # Its own transaction: a rotated refresh token must survive whatever happens to the sync.
            c = orm.connections.c
            sealed = self.seal(conn.tenant_id, conn.connector, credentials)
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(orm.connections)
                    .where(c.tenant_id == conn.tenant_id, c.connector == conn.connector)
                    .values(credentials=sealed, updated_at=self.clock.now())
                )

        return self.factories[conn.connector](conn, save_credentials, self.sleep, self.clock, self.egress)

    async def _close(self, connector: Connector) -> None:
        http = getattr(connector, "http", None)
        if http is not None:
            await http.close()

    # ------------------------------------------------------------------ applying ERP objects

    async def apply_objects(
        self, session: AsyncSession, conn: Connection, connector: Connector, objects: list[ErpObject]
    ) -> _Run:
        run = _Run()
        ledger = Ledger(session, self.outbox, self.clock, conn.tenant_id, source=conn.connector)
        for obj in sorted(objects, key=lambda o: APPLY_ORDER.get(o.kind, 9)):
            await self._apply_object(session, ledger, conn, connector, obj, run, depth=0)
        return run

    async def _apply_object(
        self,
        session: AsyncSession,
        ledger: Ledger,
        conn: Connection,
        connector: Connector,
        obj: ErpObject,
        run: _Run,
        depth: int,
    ) -> None:
        try:
            changes = connector.map(obj)
        except (MappingError, LookupError, TypeError, ValueError, AttributeError) as exc:
            await self._quarantine(
                session, conn, obj, f"{type(exc).__name__}: {exc}" if not isinstance(exc, MappingError) else str(exc)
            )
            run.quarantined += 1
            return
        failed = False
        for change in changes:
            await self._ensure_refs(session, ledger, conn, connector, change, run, depth)
            try:
                async with session.begin_nested():
                    run.changed += await self._dispatch(ledger, change)
            except LedgerRuleViolation as exc:
                await self._quarantine(session, conn, obj, f"{exc.field}: {exc.reason}")
                run.quarantined += 1
                failed = True
                continue
            if isinstance(change, UpsertInvoice):
                run.balances.append((change, obj))
        if not failed:
            await self._release_quarantine(session, conn, obj)

    async def _ensure_refs(
        self,
        session: AsyncSession,
        ledger: Ledger,
        conn: Connection,
        connector: Connector,
        change: Change,
        run: _Run,
        depth: int,
    ) -> None:
        """Fetch what a change refers to when the ledger lacks it (a payment whose invoice we never saw)."""
        if depth >= 2:
            return
        for kind, object_id in change.refs():
            table, col = (orm.customers, "customer_id") if kind == CUSTOMER else (orm.invoices, "invoice_id")
            exists = await session.scalar(
                select(func.count())
                .select_from(table)
                .where(table.c.tenant_id == conn.tenant_id, table.c[col] == object_id)
            )
            if exists:
                continue
            fetched = await connector.fetch(kind, object_id)
            if fetched is not None:
                await self._apply_object(session, ledger, conn, connector, fetched, run, depth + 1)

    async def _dispatch(self, ledger: Ledger, change: Change) -> int:
        stamps = [change.stamp]
        if isinstance(change, UpsertCustomer):
            return (await ledger.upsert_customers([change.record], stamps)).emitted
        if isinstance(change, UpsertInvoice):
            n = (await ledger.upsert_invoices([change.record], stamps)).emitted
            if change.close:
                n += len((await ledger.close_invoice(change.record.id, change.close, change.reason)).events)
            return n
        if isinstance(change, UpsertPayment):
            return (await ledger.record_payments([change.record], stamps)).emitted
        if isinstance(change, UpsertCreditNote):
            return (await ledger.record_credit_notes([change.record], stamps)).emitted
        try:
            if isinstance(change, InvoiceGone):
                return len((await ledger.close_invoice(change.invoice_id, "void", change.reason)).events)
            if isinstance(change, PaymentGone):
                return len((await ledger.reverse_payment(change.payment_id, change.reason)).events)
            if isinstance(change, CreditNoteGone):
                return len((await ledger.void_credit_note(change.credit_note_id)).events)
        except NotFound:
            return 0  # gone before we ever saw it
        raise MappingError(f"unknown change {type(change).__name__}")

    async def _quarantine(self, session: AsyncSession, conn: Connection, obj: ErpObject, error: str) -> None:
        q = orm.quarantine
        await session.execute(
            delete(q).where(
                q.c.tenant_id == conn.tenant_id, q.c.connector == conn.connector, q.c.entity == obj.kind,
                q.c.entity_id == obj.id,
            )
        )  # fmt: skip
        stored = await session.scalar(
            q.insert().values(
                tenant_id=conn.tenant_id, connector=conn.connector, entity=obj.kind, entity_id=obj.id or None,
                error=error[:2000], payload=_jsonable(obj.payload), quarantined_at=self.clock.now(),
            ).returning(q.c.id)
        )  # fmt: skip
        await drop_erased_payloads(session, q, [stored])
        log.warning("%s/%s: quarantined %s %s: %s", conn.tenant_id, conn.connector, obj.kind, obj.id, error)

    async def _release_quarantine(self, session: AsyncSession, conn: Connection, obj: ErpObject) -> None:
        q = orm.quarantine
        await session.execute(
            delete(q).where(
                q.c.tenant_id == conn.tenant_id, q.c.connector == conn.connector, q.c.entity == obj.kind,
                q.c.entity_id == obj.id,
            )
        )  # fmt: skip

    # ------------------------------------------------------------------ a sync run

    async def _locked(self, conn: Connection) -> Any:
        """A session-level advisory lock: one run per tenant and connector across replicas."""
        lock_conn = await self.engine.connect()
        key = f"ledger-sync:{conn.tenant_id}:{conn.connector}"
        got = await lock_conn.scalar(select(func.pg_try_advisory_lock(func.hashtext(key))))
        if not got:
            await lock_conn.close()
            return None
        return lock_conn

    async def _unlock(self, lock_conn: Any, conn: Connection) -> None:
        key = f"ledger-sync:{conn.tenant_id}:{conn.connector}"
        try:
            await lock_conn.execute(select(func.pg_advisory_unlock(func.hashtext(key))))
            await lock_conn.commit()
        finally:
            await lock_conn.close()

    async def _open_for_run(self, tenant_id: str, name: str) -> Connection | SyncOutcome | None:
        """The connection to sync, or the failed outcome of a run whose credentials do not open.

        That run is recorded as failed (the connector's last_error and ledger.synced name the record and the key
        id) instead of being skipped: the freshness signal shows the ledger going stale and why.
        """
        try:
            return await self.connection(tenant_id, name)
        except UndecryptableSecret as exc:
            started = self.clock.now()
            async with self.sessions() as session, session.begin():
                await record_sync(
                    session, self.outbox, self.clock, tenant_id, name, started_at=started,
                    succeeded=False, records_changed=0, error=str(exc),
                )  # fmt: skip
            return SyncOutcome(name, succeeded=False, error=str(exc))

    async def run_sync(self, tenant_id: str, name: str) -> SyncOutcome:
        conn = await self._open_for_run(tenant_id, name)
        if isinstance(conn, SyncOutcome):
            return conn
        if conn is None:
            raise NotFound(name)
        lock = await self._locked(conn)
        if lock is None:
            return SyncOutcome(name, succeeded=False, skipped=True, error="a sync of this connector is running")
        outcome = SyncOutcome(name, succeeded=False)
        started = self.clock.now()
        connector = self.build(conn)
        c = orm.connections.c
        try:
            try:
                async for page in connector.pages(conn.cursor):
                    async with self.sessions() as session, session.begin():
                        run = await self.apply_objects(session, conn, connector, page.objects)
                        await session.execute(
                            update(orm.connections)
                            .where(c.tenant_id == tenant_id, c.connector == name)
                            .values(cursor=page.cursor, updated_at=self.clock.now())
                        )
                    outcome.pages += 1
                    outcome.changed += run.changed
                    outcome.quarantined += run.quarantined
                outcome.succeeded = True
            except (ErpError, MappingError) as exc:
                outcome.error = str(exc)
                log.warning("%s/%s: sync stopped: %s (resumes from the saved cursor)", tenant_id, name, exc)
            async with self.sessions() as session, session.begin():
                await record_sync(
                    session, self.outbox, self.clock, tenant_id, name, started_at=started,
                    succeeded=outcome.succeeded, records_changed=outcome.changed, error=outcome.error,
                )  # fmt: skip
        finally:
            await self._close(connector)
            await self._unlock(lock, conn)
        return outcome

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self, tenant_id: str, name: str) -> SyncOutcome:
        """Compare every open invoice this connector brought in with the ERP; re-apply what differs.

        The corrections are the ordinary events of re-applying (invoice.voided for an invoice voided or
        deleted in the ERP, payment.applied for a payment whose webhook was missed). A balance that still
        differs afterwards is recorded as drift for a human.
        """
        conn = await self._open_for_run(tenant_id, name)
        if isinstance(conn, SyncOutcome):
            return conn
        if conn is None:
            raise NotFound(name)
        lock = await self._locked(conn)
        if lock is None:
            return SyncOutcome(name, succeeded=False, skipped=True, error="a sync of this connector is running")
        outcome = SyncOutcome(name, succeeded=False)
        started = self.clock.now()
        connector = self.build(conn)
        i = orm.invoices.c
        try:
            async with self.sessions() as session:
                open_ids = list(
                    (
                        await session.execute(
                            select(i.invoice_id)
                            .where(i.tenant_id == tenant_id, i.source == name, i.status == "open")
                            .order_by(i.invoice_id)
                        )
                    ).scalars()
                )
            try:
                for start in range(0, len(open_ids), 500):
                    chunk = open_ids[start : start + 500]
                    found = await connector.fetch_open_invoices(chunk)
                    seen = {o.id for o in found}
                    for missing in (x for x in chunk if x not in seen):
                        again = await connector.fetch(INVOICE, missing)
                        found.append(again or ErpObject(INVOICE, missing, {}, deleted=True))
                    async with self.sessions() as session, session.begin():
                        run = await self.apply_objects(session, conn, connector, found)
                        outcome.changed += run.changed
                        outcome.quarantined += run.quarantined
                        outcome.drift += await self._settle_balances(session, conn, connector, run)
                    outcome.pages += 1
                outcome.succeeded = True
            except (ErpError, MappingError) as exc:
                outcome.error = str(exc)
            async with self.sessions() as session, session.begin():
                await record_sync(
                    session, self.outbox, self.clock, tenant_id, name, started_at=started,
                    succeeded=outcome.succeeded, records_changed=outcome.changed, error=outcome.error,
                )  # fmt: skip
        finally:
            await self._close(connector)
            await self._unlock(lock, conn)
        return outcome

    async def _settle_balances(self, session: AsyncSession, conn: Connection, connector: Connector, run: _Run) -> int:
        drifted = 0
        i = orm.invoices.c
        for change, _obj in run.balances:
            if change.erp_balance is None:
                continue
            erp_minor = to_minor(change.erp_balance, change.record.currency)

            async def ledger_balance(invoice_id: str = change.record.id) -> int | None:
                return await session.scalar(
                    select(i.balance_minor).where(i.tenant_id == conn.tenant_id, i.invoice_id == invoice_id)
                )

            ours = await ledger_balance()
            if ours is None or ours == erp_minor:
                continue
            # A payment we never heard of (missed webhook): fetch the payments the ERP links and apply them.
            extra = _Run()
            for payment_id in change.linked_payments:
                payment = await connector.fetch("payment", payment_id)
                if payment is not None:
                    ledger = Ledger(session, self.outbox, self.clock, conn.tenant_id, source=conn.connector)
                    await self._apply_object(session, ledger, conn, connector, payment, extra, depth=0)
            ours = await ledger_balance()
            if ours is not None and ours != erp_minor:
                drifted += 1
                await session.execute(
                    orm.drift.insert().values(
                        tenant_id=conn.tenant_id, connector=conn.connector, invoice_id=change.record.id,
                        ledger_balance_minor=ours, erp_balance_minor=erp_minor, found_at=self.clock.now(),
                    )
                )  # fmt: skip
        return drifted

    # ------------------------------------------------------------------ webhooks

    async def store_notices(self, connector: str, notices: list[Notice], tenant_id: str | None = None) -> int:
        """Keep the notifications (the ERP gets its 200 at once); a timer applies them."""
        now = self.clock.now()
        c = orm.connections.c
        rows = []
        async with self.sessions() as session, session.begin():
            tenants: dict[str | None, str | None] = {}
            for notice in notices:
                tenant = tenant_id
                if tenant is None:
                    if notice.account not in tenants:
                        tenants[notice.account] = await session.scalar(
                            select(c.tenant_id).where(c.connector == connector, c.external_account == notice.account)
                        )
                    tenant = tenants[notice.account]
                if tenant is None:
                    log.info("%s webhook for unknown account %s ignored", connector, notice.account)
                    continue
                rows.append(
                    {
                        "tenant_id": tenant, "connector": connector, "entity": notice.kind, "entity_id": notice.id,
                        "operation": notice.operation, "payload": _jsonable(notice.payload) if notice.payload else None,
                        "received_at": now, "due_at": now,
                    }
                )  # fmt: skip
            if rows:
                await session.execute(orm.webhook_notices.insert(), rows)
        return len(rows)

    async def notices_due(self, now: datetime) -> tuple[int, float]:
        w = orm.webhook_notices.c
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(func.count(), func.min(w.due_at)).where(w.processed_at.is_(None), w.due_at <= now)
                )
            ).one()
        return int(row[0]) + self._notices_in_flight, (now - row[1]).total_seconds() if row[1] else 0.0

    async def process_notices(self, now: datetime) -> int:
        """Claim due notices (SKIP LOCKED, a lease), fetch each object once, apply, mark processed."""
        w = orm.webhook_notices.c
        async with self.sessions() as session, session.begin():
            due = (
                select(w.id)
                .where(w.processed_at.is_(None), w.due_at <= now)
                .order_by(w.id)
                .limit(self.notice_batch)
                .with_for_update(skip_locked=True)
            )
            claimed = (
                await session.execute(
                    update(orm.webhook_notices)
                    .where(w.id.in_(due.scalar_subquery()))
                    .values(due_at=now + timedelta(minutes=5), attempts=w.attempts + 1)
                    .returning(
                        w.id, w.tenant_id, w.connector, w.entity, w.entity_id, w.operation, w.payload, w.attempts
                    )
                )
            ).all()
        if not claimed:
            return 0
        # Leased (due again in 5 min), so no longer counted as due: in hand until processed. Counted only once
        # claimed: an idle round counted as work made the platform look busy to whoever waits for it to be quiet.
        self._notices_in_flight += 1
        try:
            groups: dict[tuple[str, str], list[Any]] = {}
            for row in sorted(claimed, key=lambda r: r.id):
                groups.setdefault((row.tenant_id, row.connector), []).append(row)
            for (tenant_id, name), rows in groups.items():
                await self._process_group(tenant_id, name, rows, now)
        finally:
            self._notices_in_flight -= 1
        return len(claimed)

    async def _process_group(self, tenant_id: str, name: str, rows: list[Any], now: datetime) -> None:
        w = orm.webhook_notices.c
        ids = [r.id for r in rows]
        try:
            conn = await self.connection(tenant_id, name)
        except UndecryptableSecret as exc:  # kept and retried later (the keys may be fixed), with the reason
            await self._retry_later(ids, max(r.attempts for r in rows), now, str(exc))
            return
        if conn is None:
            await self._finish(ids, now, "connector no longer configured")
            return
        connector = self.build(conn)
        try:
            latest: dict[tuple[str, str], Any] = {}
            for r in rows:  # one fetch per object, whatever the number of notifications about it
                latest[(r.entity, r.entity_id)] = r
            objects: list[ErpObject] = []
            for (kind, object_id), r in latest.items():
                if r.payload is not None:
                    objects.append(
                        ErpObject(kind, object_id, r.payload, deleted=r.operation.lower() in ("delete", "deleted"))
                    )
                    continue
                fetched = await connector.fetch(kind, object_id)
                if fetched is None:
                    fetched = ErpObject(kind, object_id, {}, deleted=True)
                objects.append(fetched)
            async with self.sessions() as session, session.begin():
                await self.apply_objects(session, conn, connector, objects)
                await session.execute(
                    update(orm.webhook_notices).where(w.id.in_(ids)).values(processed_at=now, error=None)
                )
                await drop_erased_payloads(session, orm.webhook_notices, ids)
        except ErpError as exc:
            await self._retry_later(ids, max(r.attempts for r in rows), now, str(exc))
        finally:
            await self._close(connector)

    async def _retry_later(self, ids: list[int], attempts: int, now: datetime, error: str) -> None:
        w = orm.webhook_notices.c
        delay = min(3600, 30 * 2 ** min(attempts, 7))
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(orm.webhook_notices)
                .where(w.id.in_(ids))
                .values(due_at=now + timedelta(seconds=delay), error=error[:2000])
            )

    async def _finish(self, ids: list[int], now: datetime, error: str | None) -> None:
        w = orm.webhook_notices.c
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(orm.webhook_notices).where(w.id.in_(ids)).values(processed_at=now, error=error)
            )

    # ------------------------------------------------------------------ the schedule

    async def syncs_due(self, now: datetime) -> tuple[int, float]:
        c = orm.connections.c
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(func.count(), func.min(c.next_sync_at)).where(c.enabled, c.next_sync_at <= now)
                )
            ).one()
        return int(row[0]) + self._syncs_in_flight, (now - row[1]).total_seconds() if row[1] else 0.0

    async def fire_due_syncs(self, now: datetime) -> int:
        """Run every connector whose sync (or daily reconciliation) is due; the next time is leased first."""
        c = orm.connections.c
        async with self.sessions() as session, session.begin():
            due = (
                select(c.tenant_id, c.connector)
                .where(c.enabled, c.next_sync_at <= now)
                .with_for_update(skip_locked=True)
                .limit(20)
            )
            rows = (await session.execute(due)).all()
            claimed = []
            for tenant_id, name in rows:
                reconcile = (
                    await session.execute(
                        update(orm.connections)
                        .where(c.tenant_id == tenant_id, c.connector == name)
                        .values(next_sync_at=now + func.make_interval(0, 0, 0, 0, 0, 0, c.sync_interval_s))
                        .returning(c.next_reconcile_at)
                    )
                ).scalar()
                claimed.append((tenant_id, name, reconcile is not None and reconcile <= now))
        if not claimed:
            return 0
        # Leased (next_sync_at moved on), so no longer counted as due: in hand until run (as the notices).
        self._syncs_in_flight += 1
        try:
            for tenant_id, name, reconcile in claimed:
                await self.run_sync(tenant_id, name)
                if reconcile:
                    async with self.sessions() as session, session.begin():
                        await session.execute(
                            update(orm.connections)
                            .where(c.tenant_id == tenant_id, c.connector == name)
                            .values(
                                next_reconcile_at=now + func.make_interval(0, 0, 0, 0, 0, 0, c.reconcile_interval_s)
                            )
                        )
                    await self.reconcile(tenant_id, name)
        finally:
            self._syncs_in_flight -= 1
        return len(claimed)


def first_sync_at(now: datetime, first_sync_in_s: int | None, sync_interval_s: int) -> datetime:
    """When a newly configured connector's first scheduled sync runs: `first_sync_in_s` from now (0 = now,
    the scheduler's next round), or one sync interval from now when it is not given.

    Compared with None, not by truth: 0 is a real answer ("now"), not a missing one.
    """
    return now + timedelta(seconds=sync_interval_s if first_sync_in_s is None else first_sync_in_s)


__all__ = ["Connection", "ConnectorFactory", "SyncOutcome", "SyncService", "first_sync_at"]
