"""POST/GET /v1/backfill and POST /v1/rebuild on the running service, reading a fake of the four services'
exports served over real HTTP: admin only to start, 409 without an export key, 202 then the status per source."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import text

from dunning_kit.clock import SimulatedClock
from dunning_kit.devfakes.asgi_server import AsgiServer
from dunning_kit.services import spec
from dunning_kit.testing import RunningService, assert_problem, poll_until, start_service

from . import factories as fx
from .export_fakes import KEY, URLS, FakeExports, phase_one


class ServedExports:
    """FakeExports over real HTTP: `/<fake host>/<path>` on one local port, one base URL per service."""

    def __init__(self, fake: FakeExports, port: int) -> None:
        self.fake = fake
        self.port = port

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        host, _, path = scope["path"].lstrip("/").partition("/")
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        url = f"http://{host}/{path}?{scope['query_string'].decode()}"
        answer = self.fake.handler(httpx.Request("GET", url, headers=headers))
        await send({"type": "http.response.start", "status": answer.status_code,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer.content})

    def urls(self) -> str:
        return ",".join(f"{name}=http://127.0.0.1:{self.port}/{urlsplit_host(url)}" for name, url in URLS.items())


def urlsplit_host(url: str) -> str:
    return httpx.URL(url).host


@pytest_asyncio.fixture
async def insights(database_url: str, broker: Any, clock: SimulatedClock) -> AsyncIterator[RunningService]:
    server = AsgiServer()
    served = ServedExports(FakeExports("acme", fx_tenant(phase_one(), "acme")), server.port)
    await server.start(served)
    svc = await start_service(
        spec("insights"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
        overrides={"insights_export_urls": served.urls(), "insights_export_keys": f"acme={KEY}"},
    )  # fmt: skip
    try:
        yield svc
    finally:
        await svc.stop()
        await server.stop()


def fx_tenant(envelopes: list[Any], tenant: str) -> list[Any]:
    return [env.model_copy(update={"tenant_id": tenant}) for env in envelopes]


async def test_backfill_and_rebuild_through_the_api(insights: RunningService) -> None:
    async with insights.client("acme-api-key") as api:
        assert (await api.get("/v1/backfill")).json() == {"running": False, "sources": []}
        assert_problem(await api.post("/v1/backfill"), 403)
    async with insights.client("globex-admin-key") as api:
        refused = assert_problem(await api.post("/v1/backfill"), 409)
        assert "INSIGHTS_EXPORT_KEYS" in refused["detail"]

    async with insights.client("acme-admin-key") as api:

        async def finished() -> bool:
            status = (await api.get("/v1/backfill")).json()
            return len(status["sources"]) == 5 and all(s["state"] == "finished" for s in status["sources"])

        started = await api.post("/v1/backfill")
        assert started.status_code == 202 and {s["source"] for s in started.json()["sources"]} >= {
            "ledger-sync.invoices", "notifier.events"
        }  # fmt: skip
        await poll_until(finished, what="the backfill to finish")
        invoices = await count_invoices(insights)
        assert invoices == 2
        async with insights.runtime.sessions() as session, session.begin():
            await session.execute(text("DELETE FROM invoices WHERE tenant_id = 'acme' AND invoice_id = 'A'"))
        assert (await api.post("/v1/rebuild")).status_code == 202
        await poll_until(finished, what="the rebuild to finish")
        assert await count_invoices(insights) == 2
        items = {s["source"]: s["items"] for s in (await api.get("/v1/backfill")).json()["sources"]}
        assert items["ledger-sync.invoices"] == 2 and items["promise-tracker.events"] == len(
            fx.promise("x", when=fx.T0, kept_at=fx.T0)
        )


async def count_invoices(svc: RunningService) -> int:
    async with svc.runtime.sessions() as session:
        return int(await session.scalar(text("SELECT count(*) FROM invoices WHERE tenant_id = 'acme'")) or 0)
