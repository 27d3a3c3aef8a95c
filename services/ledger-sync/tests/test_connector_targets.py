"""What a tenant may point a connector at: no internal address (422 when configured, refused on connect after
DNS, no credentials sent), and no ERP company another tenant has already connected (409)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from dunning_kit.clock import SimulatedClock
from dunning_kit.devfakes.dns import FakeDns
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, RunningService, start_service
from ledger_sync.adapters import orm
from ledger_sync.devfakes.server import serving

ACME_ADMIN = "acme-admin-key"
GLOBEX_ADMIN = "globex-admin-key"

INTERNAL_URLS = [
    "http://127.0.0.1:9000",
    "http://localhost:9000",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.0.0.7",
    "http://172.31.255.1",
    "http://192.168.1.20",
    "http://0.0.0.0:9000",
    "http://2130706433:9000",
    "http://0177.0.0.1:9000",
    "http://0x7f.0.0.1:9000",
    "http://0x7f000001:9000",
    "http://127.1:9000",
    "http://[::1]:9000",
    "http://[fe80::1]:9000",
    "http://[fc00::1]:9000",
    "http://[::ffff:127.0.0.1]:9000",
    "file:///etc/passwd",
]


@pytest_asyncio.fixture
async def strict(database_url: str, broker: BrokerBackend, clock: SimulatedClock) -> AsyncIterator[RunningService]:
    """ledger-sync as in production: no address is an exception to the outbound guard."""
    svc = await start_service(
        spec("ledger-sync"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
        overrides={"outbound_allowed_networks": ""},
    )  # fmt: skip
    try:
        yield svc
    finally:
        await svc.stop()


@pytest.mark.parametrize("key", ["base_url", "token_url"])
async def test_every_internal_connector_url_is_refused_with_422_naming_the_field(
    strict: RunningService, key: str
) -> None:
    accepted = []
    async with strict.client(ACME_ADMIN) as admin:
        for url in INTERNAL_URLS:
            r = await admin.put(
                "/v1/connectors/quickbooks", json={"external_account": "9130350000000001", "config": {key: url}}
            )
            if r.status_code != 422 or r.json()["errors"][0]["field"] != f"config.{key}":
                accepted.append((url, r.status_code, r.text[:200]))
        assert accepted == []
        assert (await admin.get("/v1/connectors")).json()["items"] == [], "nothing was saved"
        ok = await admin.put(
            "/v1/connectors/quickbooks",
            json={"external_account": "9130350000000001", "config": {key: "https://quickbooks.api.intuit.com"}},
        )
        assert ok.status_code == 200, ok.text


class Recorder:
    """An internal service: records every request that reaches it (it must see none)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append({"path": scope["path"], "headers": dict(scope["headers"]), "body": body})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"access_token": "x", "expires_in": 3600}'})


async def test_an_erp_name_resolving_to_loopback_gets_no_request_and_no_client_secret(strict: RunningService) -> None:
    recorder = Recorder()
    async with serving(recorder) as base:
        port = base.rsplit(":", 1)[1]
        with FakeDns({"erp.acme.example": ["127.0.0.1"]}):
            async with strict.client(ACME_ADMIN) as admin:
                put = await admin.put(
                    "/v1/connectors/quickbooks",
                    json={
                        "external_account": "9130350000000001",
                        "config": {"base_url": f"http://erp.acme.example:{port}",
                                   "token_url": f"http://erp.acme.example:{port}/oauth2/v1/tokens/bearer",
                                   "client_id": "qb-client"},
                        "credentials": {"client_secret": "planted-client-secret", "refresh_token": "planted-rt"},
                    },
                )  # fmt: skip
                assert put.status_code == 200, "a public-looking name is accepted when configured"
                synced = await admin.post("/v1/connectors/quickbooks/sync")
    assert synced.status_code == 502
    assert "internal addresses are not allowed" in synced.json()["error"]
    assert recorder.requests == [], "neither the token request nor an API call reached the internal address"


@pytest.mark.parametrize(("connector", "account"), [("quickbooks", "9130350000000001"), ("xero", "a3f1c2d4-xero")])
async def test_a_second_tenant_cannot_connect_an_erp_company_another_tenant_has(
    strict: RunningService, connector: str, account: str
) -> None:
    body = {"external_account": account, "config": {"client_id": "app"}}
    async with strict.client(ACME_ADMIN) as acme, strict.client(GLOBEX_ADMIN) as globex:
        assert (await acme.put(f"/v1/connectors/{connector}", json=body)).status_code == 200
        taken = await globex.put(f"/v1/connectors/{connector}", json=body)
        assert taken.status_code == 409, taken.text
        assert taken.headers["content-type"] == "application/problem+json"
        problem = taken.json()
        assert problem["type"] == "urn:dunning:problem:external-account-taken"
        assert problem["field"] == "external_account" and account in problem["detail"]
        assert "acme" not in problem["detail"], "the other tenant is not named"
        assert (await acme.put(f"/v1/connectors/{connector}", json=body)).status_code == 200, "its own again: fine"
        other = {**body, "external_account": account + "-globex"}
        assert (await globex.put(f"/v1/connectors/{connector}", json=other)).status_code == 200
    c = orm.connections.c
    async with strict.runtime.sessions() as session:
        owners = (
            (await session.execute(select(c.tenant_id).where(c.connector == connector, c.external_account == account)))
            .scalars()
            .all()
        )
    assert owners == ["acme"], "webhooks for that account still reach only its first tenant"
