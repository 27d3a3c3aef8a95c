"""A tenant's webhook signing secret is encrypted at rest, survives a key rotation (`python -m notifier.rotate_keys`),
and a secret no configured key opens is named and holds its webhooks back (readiness false), never sent unsigned.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from dunning_events import topics
from dunning_kit import key_rotation
from dunning_kit.testing import RunningService, poll_until, raw_schema_dump
from notifier.adapters.channel_secrets import reseal_all
from notifier.settings import Settings
from notifier.testing import EventFeed, read_topic

from .test_channels import SECRET, Receiver

K1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
K2 = "k2:" + base64.b64encode(bytes(range(100, 132))).decode()


@pytest_asyncio.fixture(name="receiver")
async def _receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.server.start()
    yield r
    await r.server.stop()


async def configure(svc: RunningService, receiver: Receiver, secret: str | None = SECRET) -> Any:
    webhook: dict[str, Any] = {"url": f"{receiver.server.base_url}/hooks/dunning"}
    if secret:
        webhook["secret"] = secret
    async with svc.client("acme-admin-key") as admin:
        return await admin.put("/v1/channel-config", json={"webhook": webhook})


async def stored_secret(svc: RunningService) -> str:
    async with svc.runtime.sessions() as s:
        return str(await s.scalar(text("SELECT config -> 'webhook' ->> 'secret' FROM tenant_settings")))


async def readiness(svc: RunningService) -> tuple[int, dict[str, bool]]:
    async with svc.client(None) as anon:
        r = await anon.get("/readyz")
    return r.status_code, r.json()["checks"]


async def test_the_webhook_signing_secret_is_encrypted_at_rest_and_rotates_to_a_new_key(
    start_notifier: Any,
    database_url: str,
    broker: Any,
    feed: EventFeed,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    svc = await start_notifier(data_encryption_keys=K1)
    assert (await configure(svc, receiver)).status_code == 200
    assert (await configure(svc, receiver, secret=None)).status_code == 200, "a PUT without a secret keeps it"
    secret_b64 = SECRET.removeprefix("whsec_")
    dump = await raw_schema_dump(svc.runtime)
    assert "/hooks/dunning" in dump, "the dump does read the tables"
    assert SECRET not in dump and secret_b64 not in dump
    assert (await stored_secret(svc)).startswith("v1:k1:")
    await svc.stop()

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_ENCRYPTION_KEYS", f"{K2},{K1}")
    settings = Settings(database_url=database_url, data_encryption_keys=f"{K2},{K1}")
    report = await key_rotation.rotate(settings, "notifier", reseal_all, batch_size=1)
    assert (report.records, report.resealed, report.failed) == (1, 1, [])
    assert await asyncio.to_thread(key_rotation.main, "notifier", reseal_all, []) == 0
    assert "1 records: 0 secrets re-encrypted under key 'k2'" in capsys.readouterr().out, "idempotent"

    svc = await start_notifier(data_encryption_keys=K2)  # the old key removed
    assert (await stored_secret(svc)).startswith("v1:k2:")
    await feed.publish(feed.customer(), feed.invoice())
    notifications = await read_topic(broker.bootstrap_servers, topics.NOTIFICATIONS)
    try:
        await feed.publish(feed.step(channels=["webhook"]))
        await notifications.wait_for("notification.sent")
    finally:
        await notifications.stop()
    assert len(receiver.accepted) == 1 and receiver.rejected == 0, "signed with the secret read back under k2"
    assert (await readiness(svc))[1]["stored_secrets"] is True


async def test_a_signing_secret_no_key_opens_holds_its_webhooks_names_the_record_and_makes_readiness_false(
    start_notifier: Any,
    database_url: str,
    feed: EventFeed,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = await start_notifier(data_encryption_keys=K1)
    assert (await configure(svc, receiver)).status_code == 200
    await svc.stop()
    caplog.set_level(logging.ERROR, logger="dunning.data_keys")
    svc = await start_notifier(data_encryption_keys=K2)
    status, checks = await readiness(svc)
    assert status == 503 and checks["stored_secrets"] is False
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step(channels=["webhook"]))

    async def held() -> Any:
        async with svc.runtime.sessions() as s:
            return (await s.execute(text("SELECT status, error FROM deliveries WHERE channel = 'webhook'"))).first()

    row = await poll_until(lambda: _with_error(held), what="the webhook delivery to record why it waits")
    assert row.status == "pending", "held for a retry, not failed and not sent"
    assert "tenant_settings (tenant 'acme') field webhook.secret cannot be decrypted (key id 'k1')" in row.error
    assert receiver.accepted == [] and receiver.rejected == 0, "nothing went out unsigned"
    logged = [r.getMessage() for r in caplog.records if "cannot be decrypted" in r.getMessage()]
    assert len(logged) == 1, logged

    async with svc.client("acme-admin-key") as admin:
        assert (await admin.get("/v1/channel-config")).status_code == 200, "the rest of the config is still served"
        kept = await admin.put("/v1/channel-config", json={"webhook": {"url": f"{receiver.server.base_url}/x"}})
        assert kept.status_code == 503 and kept.json()["field"] == "webhook.secret", "never kept as if unset"
    assert (await configure(svc, receiver)).status_code == 200, "a new secret replaces the one that does not open"
    assert (await readiness(svc))[1]["stored_secrets"] is True


async def _with_error(fetch: Any) -> Any:
    row = await fetch()
    return row if row is not None and row.error else None
