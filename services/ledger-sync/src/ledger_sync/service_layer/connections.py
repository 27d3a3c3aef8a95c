"""A tenant's connector settings and what its syncs left for a human: configure, list, quarantine, drift.

The connector routes call these; the SQL stays here. Lists are the kit's cursor pages on indexed orders:
connectors by name (the primary key), quarantine and drift by their serial id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from dunning_kit.pages import CursorCodec, Page
from ledger_sync.adapters import orm
from ledger_sync.service_layer.freshness import record_unscheduled
from ledger_sync.service_layer.sync import first_sync_at

CONNECTORS = CursorCodec("ledger.connectors")
QUARANTINE = CursorCodec("ledger.quarantine")
DRIFT = CursorCodec("ledger.drift")


class ExternalAccountTaken(Exception):
    """Another tenant already connected this ERP company (decided by the unique index, so races cannot both win)."""


@dataclass(frozen=True)
class ConnectionSettings:
    external_account: str | None
    config: dict[str, Any]
    sealed_credentials: dict[str, Any]  # encrypted at rest by the caller
    enabled: bool
    sync_interval_s: int
    reconcile_interval_s: int
    first_sync_in_s: int | None


async def configure(
    sessions: async_sessionmaker[AsyncSession],
    outbox: OutboxWriter,
    clock: Clock,
    tenant_id: str,
    connector: str,
    settings: ConnectionSettings,
) -> None:
    """Create or replace a tenant's connector; a disabled one says so on ledger.synced in the same transaction."""
    now = clock.now()
    values = {
        "external_account": settings.external_account,
        "config": settings.config,
        "credentials": settings.sealed_credentials,
        "enabled": settings.enabled,
        "sync_interval_s": settings.sync_interval_s,
        "reconcile_interval_s": settings.reconcile_interval_s,
        "next_sync_at": first_sync_at(now, settings.first_sync_in_s, settings.sync_interval_s),
        "next_reconcile_at": now + timedelta(seconds=settings.reconcile_interval_s),
        "updated_at": now,
    }
    c = orm.connections.c
    try:
        async with sessions() as session, session.begin():
            stmt = insert(orm.connections).values(tenant_id=tenant_id, connector=connector, **values)
            await session.execute(stmt.on_conflict_do_update(index_elements=[c.tenant_id, c.connector], set_=values))
            if not settings.enabled:
                await record_unscheduled(session, outbox, clock, tenant_id, connector)
    except IntegrityError as exc:
        if settings.external_account is None or orm.UQ_CONNECTIONS_ACCOUNT not in str(exc.orig):
            raise
        raise ExternalAccountTaken from None


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _connection_view(r: Any) -> dict[str, Any]:
    return {
        "connector": r["connector"],
        "external_account": r["external_account"],
        "config": r["config"],
        "credentials": sorted(r["credentials"]),  # which secrets are set, never their values
        "cursor": r["cursor"],
        "enabled": r["enabled"],
        "next_sync_at": _iso(r["next_sync_at"]),
        "last_success_at": _iso(r["last_success_at"]),
        "last_error": r["last_error"],
    }


async def list_connections(
    session: AsyncSession, tenant_id: str, *, limit: int, cursor: str | None
) -> Page[dict[str, Any]]:
    c = orm.connections.c
    stmt = select(orm.connections).where(c.tenant_id == tenant_id)
    if (after := CONNECTORS.decode(cursor, 1)) is not None:
        stmt = stmt.where(c.connector > after[0])
    rows = list((await session.execute(stmt.order_by(c.connector).limit(limit + 1))).mappings())
    return CONNECTORS.page(rows, limit, lambda r: (r["connector"],), _connection_view)


async def _connector_page(
    session: AsyncSession,
    table: Table,
    codec: CursorCodec,
    tenant_id: str,
    connector: str,
    *,
    limit: int,
    cursor: str | None,
    view: Callable[[Any], dict[str, Any]],
) -> Page[dict[str, Any]]:
    """One page of a connector's rows in id order (quarantine and drift keep one row per finding)."""
    t = table.c
    stmt = select(table).where(t.tenant_id == tenant_id, t.connector == connector)
    if (after := codec.decode(cursor, 1)) is not None:
        stmt = stmt.where(t.id > after[0])
    rows = list((await session.execute(stmt.order_by(t.id).limit(limit + 1))).mappings())
    page: Page[dict[str, Any]] = codec.page(rows, limit, lambda r: (r["id"],), view)
    return page


async def quarantined(
    session: AsyncSession, tenant_id: str, connector: str, *, limit: int, cursor: str | None
) -> Page[dict[str, Any]]:
    return await _connector_page(
        session, orm.quarantine, QUARANTINE, tenant_id, connector, limit=limit, cursor=cursor,
        view=lambda r: {"entity": r["entity"], "entity_id": r["entity_id"], "error": r["error"],
                        "payload": r["payload"], "quarantined_at": r["quarantined_at"].isoformat()},
    )  # fmt: skip


async def drift(
    session: AsyncSession, tenant_id: str, connector: str, *, limit: int, cursor: str | None
) -> Page[dict[str, Any]]:
    return await _connector_page(
        session, orm.drift, DRIFT, tenant_id, connector, limit=limit, cursor=cursor,
        view=lambda r: {"invoice_id": r["invoice_id"], "ledger_balance_minor": r["ledger_balance_minor"],
                        "erp_balance_minor": r["erp_balance_minor"], "found_at": r["found_at"].isoformat()},
    )  # fmt: skip
