"""The tenant's webhook signing secret at rest: sealed inside `tenant_settings.config` (AES-GCM, dunning_kit.data_keys).

Only `webhook.secret` is a secret in a channel configuration; the rest stays readable JSON. Its ciphertext is
bound to (tenant_settings, tenant, webhook.secret): copied to another tenant's row it does not open.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_kit.data_keys import Keyring, RotationReport, SecretRef, StoredSecretsHealth, UndecryptableSecret, reseal
from notifier.adapters import orm

TABLE = "tenant_settings"


def webhook_secret_ref(tenant_id: str) -> SecretRef:
    return SecretRef(TABLE, tenant_id, "webhook.secret")


def _secret_of(config: Mapping[str, Any]) -> Any:
    webhook = config.get("webhook")
    return webhook.get("secret") if isinstance(webhook, Mapping) else None


class ChannelSecrets:
    """Seals and opens the secrets of stored channel configurations; knows which of them do not open."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], keyring: Keyring) -> None:
        self.sessions = sessions
        self.keyring = keyring
        self.health = StoredSecretsHealth(self.undecryptable)

    def seal(self, tenant_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """The configuration as stored: its webhook secret (if any) encrypted under the newest key."""
        out = copy.deepcopy(dict(config))
        secret = _secret_of(out)
        if secret is not None:
            out["webhook"]["secret"] = self.keyring.seal(secret, webhook_secret_ref(tenant_id))
        return out

    def open(self, tenant_id: str, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The configuration with its secret in plain text; raises UndecryptableSecret (and readiness false)."""
        out = copy.deepcopy(dict(stored))
        sealed = _secret_of(out)
        if sealed is None:
            return out
        ref = webhook_secret_ref(tenant_id)
        try:
            out["webhook"]["secret"] = self.keyring.open(sealed, ref)
        except UndecryptableSecret as exc:
            self.health.failed(exc)
            raise
        self.health.opened(ref)
        return out

    def without_secret(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(dict(stored))
        if isinstance(out.get("webhook"), dict):
            out["webhook"].pop("secret", None)
        return out

    async def undecryptable(self) -> list[UndecryptableSecret]:
        ts = orm.tenant_settings.c
        found = []
        async with self.sessions() as session:
            for tenant_id, config in await session.execute(select(ts.tenant_id, ts.config)):
                sealed = _secret_of(config or {})
                if sealed is None:
                    continue
                try:
                    self.keyring.open(sealed, webhook_secret_ref(tenant_id))
                except UndecryptableSecret as exc:
                    found.append(exc)
        return found


async def reseal_all(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, batch_size: int = 500
) -> RotationReport:
    """Re-encrypt every tenant's webhook signing secret under the newest key, a batch of tenants a transaction."""
    ts = orm.tenant_settings.c
    report = RotationReport()
    after = ""
    while True:
        async with sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(ts.tenant_id, ts.config)
                    .where(ts.tenant_id > after)
                    .order_by(ts.tenant_id)
                    .limit(batch_size)
                    .with_for_update()
                )
            ).all()
            for tenant_id, config in rows:
                report.records += 1
                secret = _secret_of(config or {})
                if secret is None:
                    continue
                try:
                    new = reseal(keyring, secret, webhook_secret_ref(tenant_id), report, leftover=str(secret))
                except UndecryptableSecret as exc:
                    report.failed.append(str(exc))
                    continue
                if new is not None:
                    changed = copy.deepcopy(config)
                    changed["webhook"]["secret"] = new
                    await session.execute(
                        update(orm.tenant_settings).where(ts.tenant_id == tenant_id).values(config=changed)
                    )
        if len(rows) < batch_size:
            return report
        after = rows[-1].tenant_id
