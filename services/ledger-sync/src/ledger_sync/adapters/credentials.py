"""Connector credentials at rest: every value of `connections.credentials` is sealed field by field.

The field names stay readable (the connector list says which secrets are set); each value is an AES-GCM
envelope of its JSON, bound to (tenant, connector, field), so no value opens in another row or field. Reads
open every field or raise UndecryptableSecret naming the first that does not open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_kit.data_keys import Keyring, RotationReport, SecretRef, UndecryptableSecret, reseal
from ledger_sync.adapters import orm

TABLE = "connections"


def credential_ref(tenant_id: str, connector: str, name: str) -> SecretRef:
    return SecretRef(TABLE, tenant_id, f"credentials.{name}", connector=connector)


def seal_credentials(
    keyring: Keyring, tenant_id: str, connector: str, credentials: Mapping[str, Any]
) -> dict[str, str]:
    return {
        name: keyring.seal(json.dumps(value), credential_ref(tenant_id, connector, name))
        for name, value in credentials.items()
    }


def open_credentials(keyring: Keyring, tenant_id: str, connector: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: json.loads(keyring.open(value, credential_ref(tenant_id, connector, name)))
        for name, value in stored.items()
    }


async def undecryptable(sessions: async_sessionmaker[AsyncSession], keyring: Keyring) -> list[UndecryptableSecret]:
    """Every stored credential the keyring cannot open (the readiness scan: one small row per connector)."""
    c = orm.connections.c
    found = []
    async with sessions() as session:
        rows = await session.execute(select(c.tenant_id, c.connector, c.credentials))
        for tenant_id, connector, stored in rows:
            for name, value in (stored or {}).items():
                try:
                    keyring.open(value, credential_ref(tenant_id, connector, name))
                except UndecryptableSecret as exc:
                    found.append(exc)
    return found


async def reseal_all(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, batch_size: int = 500
) -> RotationReport:
    """Re-encrypt every connector's credentials under the newest key, a batch of rows per transaction.

    Idempotent (a value under the newest key is left alone) and safe beside running syncs: the batch's rows
    are locked, so a refreshed token written meanwhile waits and is sealed under the newest key anyway.
    """
    c = orm.connections.c
    report = RotationReport()
    after: tuple[str, str] = ("", "")
    while True:
        async with sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(c.tenant_id, c.connector, c.credentials)
                    .where(tuple_(c.tenant_id, c.connector) > tuple_(*after))
                    .order_by(c.tenant_id, c.connector)
                    .limit(batch_size)
                    .with_for_update()
                )
            ).all()
            for tenant_id, connector, stored in rows:
                report.records += 1
                changed = dict(stored or {})
                for name, value in (stored or {}).items():
                    ref = credential_ref(tenant_id, connector, name)
                    try:
                        new = reseal(keyring, value, ref, report, leftover=json.dumps(value))
                    except UndecryptableSecret as exc:
                        report.failed.append(str(exc))
                        continue
                    if new is not None:
                        changed[name] = new
                if changed != stored:
                    await session.execute(
                        update(orm.connections)
                        .where(c.tenant_id == tenant_id, c.connector == connector)
                        .values(credentials=changed)
                    )
        if len(rows) < batch_size:
            return report
        after = (rows[-1].tenant_id, rows[-1].connector)
