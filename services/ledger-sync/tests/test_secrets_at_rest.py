"""Connector credentials, OAuth tokens (refreshed ones too) and webhook signing secrets are encrypted at rest;
the keys rotate (`python -m ledger_sync.rotate_keys`); a secret no configured key opens is named, never skipped.
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

from dunning_kit import key_rotation
from dunning_kit.clock import SimulatedClock
from dunning_kit.data_keys import DataKeySettingError
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, RunningService, raw_schema_dump, start_service, wait_until_quiet
from ledger_sync.adapters.credentials import open_credentials, reseal_all
from ledger_sync.devfakes.netsuite import FakeNetSuite
from ledger_sync.devfakes.quickbooks import FakeQuickBooks
from ledger_sync.devfakes.server import serving
from ledger_sync.devfakes.stripe import FakeStripe
from ledger_sync.settings import Settings

REALM = "9130350000000001"
K1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
K2 = "k2:" + base64.b64encode(bytes(range(100, 132))).decode()
QBO_SECRET = "qbo-client-secret-7f3a9c51"
QBO_FIRST_REFRESH = "qbo-refresh-token-first-1b2c3d"
STRIPE_KEY = "sk_test_at_rest_4242424242"
STRIPE_WHSEC = "whsec_at_rest_9f8e7d6c5b4a"
NETSUITE = {"consumer_key": "ns-consumer-key-5e4d3c", "consumer_secret": "ns-consumer-secret-a1b2c3",
            "token_id": "ns-token-id-0f9e8d", "token_secret": "ns-token-secret-7a6b5c"}  # fmt: skip


@pytest_asyncio.fixture
async def netsuite(clock: SimulatedClock) -> AsyncIterator[tuple[FakeNetSuite, str]]:
    fake = FakeNetSuite("TSTDRV1234567", clock.now, **NETSUITE)
    async with serving(fake.app) as base:
        yield fake, base


@pytest_asyncio.fixture
async def erps(clock: SimulatedClock) -> AsyncIterator[tuple[FakeQuickBooks, FakeStripe, str, str]]:
    qbo = FakeQuickBooks(REALM, clock.now, client_secret=QBO_SECRET, refresh_token=QBO_FIRST_REFRESH)
    stripe = FakeStripe(clock.now, api_key=STRIPE_KEY, webhook_secret=STRIPE_WHSEC)
    async with serving(qbo.app) as qbo_base, serving(stripe.app) as stripe_base:
        yield qbo, stripe, qbo_base, stripe_base


async def ledger(database_url: str, broker: BrokerBackend, clock: SimulatedClock, keys: str) -> RunningService:
    return await start_service(
        spec("ledger-sync"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
        overrides={"data_encryption_keys": keys},
    )  # fmt: skip


async def connect(svc: RunningService, erps: tuple[FakeQuickBooks, FakeStripe, str, str], tenant: str) -> None:
    qbo, _stripe, qbo_base, stripe_base = erps
    async with svc.client(f"{tenant}-admin-key") as admin:
        if tenant == "acme":
            put = await admin.put(
                "/v1/connectors/quickbooks",
                json={"external_account": REALM,
                      "config": {"base_url": qbo_base, "token_url": f"{qbo_base}/oauth2/v1/tokens/bearer",
                                 "client_id": qbo.client_id},
                      "credentials": {"client_secret": QBO_SECRET, "refresh_token": QBO_FIRST_REFRESH}},
            )  # fmt: skip
            assert put.status_code == 200, put.text
        put = await admin.put(
            "/v1/connectors/stripe",
            json={"config": {"base_url": stripe_base},
                  "credentials": {"api_key": STRIPE_KEY, "webhook_secret": STRIPE_WHSEC}},
        )  # fmt: skip
        assert put.status_code == 200, put.text


async def sync(svc: RunningService, tenant: str, connector: str) -> tuple[int, dict[str, Any]]:
    async with svc.client(f"{tenant}-admin-key") as admin:
        r = await admin.post(f"/v1/connectors/{connector}/sync")
    return r.status_code, r.json()


async def signed_webhook_status(svc: RunningService, stripe: FakeStripe, tenant: str) -> int:
    stripe.customer(f"cus_{tenant}", "Initech")
    body, sig = stripe.signed(stripe.events[-1])
    async with svc.client(None) as anon:
        r = await anon.post(f"/webhooks/stripe/{tenant}", content=body, headers={"Stripe-Signature": sig})
    return r.status_code


async def stored(svc: RunningService) -> dict[tuple[str, str], dict[str, Any]]:
    async with svc.runtime.sessions() as s:
        rows = await s.execute(text("SELECT tenant_id, connector, credentials FROM connections"))
        return {(t, c): dict(creds) for t, c, creds in rows}


async def readiness(svc: RunningService) -> tuple[int, dict[str, bool]]:
    async with svc.client(None) as anon:
        r = await anon.get("/readyz")
    return r.status_code, r.json()["checks"]


async def test_no_credential_token_or_webhook_secret_is_stored_in_plain_text(
    database_url: str,
    broker: BrokerBackend,
    clock: SimulatedClock,
    erps: tuple[FakeQuickBooks, FakeStripe, str, str],
    netsuite: tuple[FakeNetSuite, str],
) -> None:
    qbo, stripe, _, _ = erps
    svc = await ledger(database_url, broker, clock, K1)
    try:
        await connect(svc, erps, "acme")
        async with svc.client("globex-admin-key") as admin:  # token-based auth: four secrets
            put = await admin.put(
                "/v1/connectors/netsuite",
                json={
                    "external_account": "TSTDRV1234567",
                    "config": {"base_url": netsuite[1]},
                    "credentials": NETSUITE,
                },
            )
            assert put.status_code == 200, put.text
        status, out = await sync(svc, "globex", "netsuite")
        assert status == 200 and out["succeeded"], "the request signatures were made from the decrypted secrets"
        qbo.customer("1", "Initech", "ap@initech.example")
        status, out = await sync(svc, "acme", "quickbooks")  # the first call refreshes the OAuth tokens
        assert status == 200 and out["succeeded"], out
        assert qbo.access_token and qbo.refresh_token != QBO_FIRST_REFRESH, "tokens were refreshed during the sync"
        assert await signed_webhook_status(svc, stripe, "acme") == 200, "the stored signing secret still verifies"
        await wait_until_quiet([svc.runtime])
        status, out = await sync(svc, "acme", "quickbooks")
        assert status == 200 and out["succeeded"], "the refreshed tokens were stored and read back"

        dump = await raw_schema_dump(svc.runtime)
        assert "Initech" in dump, "the dump does read the tables"
        secrets = [QBO_SECRET, QBO_FIRST_REFRESH, qbo.access_token, qbo.refresh_token, STRIPE_KEY, STRIPE_WHSEC,
                   *NETSUITE.values()]  # fmt: skip
        assert [s for s in secrets if s in dump] == []
        for creds in (await stored(svc)).values():
            assert creds and all(v.startswith("v1:k1:") for v in creds.values()), creds
        async with svc.client("acme-admin-key") as admin:
            listed = {c["connector"]: c["credentials"] for c in (await admin.get("/v1/connectors")).json()["items"]}
        assert listed["stripe"] == ["api_key", "webhook_secret"], "which secrets are set is still shown"
    finally:
        await svc.stop()


async def test_rotation_re_encrypts_everything_under_the_new_key_and_the_old_key_can_go(
    database_url: str,
    broker: BrokerBackend,
    clock: SimulatedClock,
    erps: tuple[FakeQuickBooks, FakeStripe, str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    qbo, stripe, _, _ = erps
    svc = await ledger(database_url, broker, clock, K1)
    try:
        await connect(svc, erps, "acme")
        await connect(svc, erps, "globex")
        assert (await sync(svc, "acme", "quickbooks"))[0] == 200
        async with svc.runtime.sessions() as s, s.begin():  # a value written before encryption existed
            await s.execute(
                text(
                    'UPDATE connections SET credentials = credentials || \'{"legacy_password": "plain-leftover-pw"}\''
                    " WHERE tenant_id = 'globex'"
                )
            )
    finally:
        await svc.stop()

    # The new key first, the old one still there: the command re-encrypts, a row per batch here.
    settings = Settings(database_url=database_url, data_encryption_keys=f"{K2},{K1}")
    report = await key_rotation.rotate(settings, "ledger_sync", reseal_all, batch_size=1)
    assert (report.records, report.encrypted_plaintext, report.failed) == (3, 1, [])
    assert report.resealed == 4 + 2 + 2, report  # qbo: secret, refresh and access token, expiry; 2 x stripe
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_ENCRYPTION_KEYS", f"{K2},{K1}")
    exit_code = await asyncio.to_thread(key_rotation.main, "ledger-sync", reseal_all, ["--batch-size", "2"])
    assert exit_code == 0
    assert "3 records: 0 secrets re-encrypted under key 'k2', 0 plain-text secrets encrypted, 9 already current, 0 " \
        "undecryptable" in capsys.readouterr().out, "a second run changes nothing"  # fmt: skip

    svc = await ledger(database_url, broker, clock, K2)  # the old key removed
    try:
        creds = await stored(svc)
        assert all(v.startswith("v1:k2:") for c in creds.values() for v in c.values()), creds
        assert open_credentials(svc.runtime.objects.sync.keyring, "globex", "stripe", creds[("globex", "stripe")]) == {
            "api_key": STRIPE_KEY, "webhook_secret": STRIPE_WHSEC, "legacy_password": "plain-leftover-pw"
        }  # fmt: skip
        qbo.customer("2", "Hooli")
        status, out = await sync(svc, "acme", "quickbooks")
        assert status == 200 and out["succeeded"], out
        assert (await sync(svc, "globex", "stripe"))[0] == 200
        assert await signed_webhook_status(svc, stripe, "acme") == 200
        assert (await readiness(svc))[1]["stored_secrets"] is True
    finally:
        await svc.stop()


async def test_a_secret_no_configured_key_opens_fails_its_connector_by_name_and_makes_readiness_false(
    database_url: str,
    broker: BrokerBackend,
    clock: SimulatedClock,
    erps: tuple[FakeQuickBooks, FakeStripe, str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = await ledger(database_url, broker, clock, K1)
    try:
        await connect(svc, erps, "acme")
    finally:
        await svc.stop()
    svc = await ledger(database_url, broker, clock, K2)  # k1 forgotten: acme's secrets no longer open
    try:
        await connect(svc, erps, "globex")  # sealed under k2
        caplog.set_level(logging.ERROR, logger="dunning.data_keys")
        status, checks = await readiness(svc)
        assert status == 503 and checks["stored_secrets"] is False and checks["database"] is True
        status, out = await sync(svc, "acme", "quickbooks")
        assert status == 502 and not out["succeeded"]
        assert "connections (tenant 'acme', connector 'quickbooks') field credentials." in out["error"]
        assert "key id 'k1'" in out["error"] and "not configured" in out["error"]
        async with svc.client("acme-admin-key") as admin:
            listed = {c["connector"]: c for c in (await admin.get("/v1/connectors")).json()["items"]}
        assert "key id 'k1'" in listed["quickbooks"]["last_error"], "the connector's status says why"
        assert (await sync(svc, "globex", "stripe"))[0] == 200, "every other tenant is still served"
        assert await signed_webhook_status(svc, erps[1], "acme") == 503, "Stripe retries; nothing verified without it"
        logged = [r.getMessage() for r in caplog.records if "cannot be decrypted" in r.getMessage()]
        # One line per stored secret (acme: quickbooks 2, stripe 2), however many probes and syncs.
        assert len(logged) == 4 and len(set(logged)) == 4, logged
        await sync(svc, "acme", "quickbooks")
        await readiness(svc)
        assert len([r for r in caplog.records if "cannot be decrypted" in r.getMessage()]) == 4
    finally:
        await svc.stop()
    svc = await ledger(database_url, broker, clock, f"{K2},{K1}")  # the key is back
    try:
        assert (await readiness(svc))[1]["stored_secrets"] is True
        assert (await sync(svc, "acme", "stripe"))[0] == 200
    finally:
        await svc.stop()


def test_a_malformed_key_setting_stops_the_start_naming_the_setting_and_not_the_key(clock: SimulatedClock) -> None:
    module = spec("ledger-sync").bootstrap()
    with pytest.raises(DataKeySettingError, match="DATA_ENCRYPTION_KEYS: key 'k1' must be 32 random bytes") as e:
        module.build_runtime(Settings(data_encryption_keys="k1:c2hvcnQ="), clock)
    assert "c2hvcnQ" not in str(e.value)
