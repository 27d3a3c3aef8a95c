"""A tenant's webhook endpoint cannot point inside: refused with 422 when configured, and refused again when
the reminder is sent if the name resolves to an internal address then (DNS rebinding)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response

from dunning_kit.devfakes.asgi_server import AsgiServer
from dunning_kit.devfakes.dns import FakeDns
from dunning_kit.testing import RunningService
from notifier.testing import EventFeed, TopicReader

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

INTERNAL_WEBHOOK_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.1.2.3/hook",
    "http://172.20.0.1/hook",
    "http://192.168.0.10/hook",
    "http://0.0.0.0/hook",
    "http://2130706433/hook",
    "http://0177.0.0.1/hook",
    "http://0x7f.0.0.1/hook",
    "http://127.1/hook",
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
]


@pytest.fixture
def notifier_overrides() -> dict[str, Any]:
    return {"outbound_allowed_networks": ""}  # production: no exceptions


class Receiver:
    def __init__(self) -> None:
        self.calls = 0
        app = FastAPI()

        @app.post("/hooks/dunning")
        async def hook(request: Request) -> Response:
            self.calls += 1
            return Response(status_code=204)

        self.server = AsgiServer(app)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.server.start()
    yield r
    await r.server.stop()


async def test_every_internal_webhook_url_is_refused_with_422_naming_the_field(notifier: RunningService) -> None:
    accepted = []
    async with notifier.client("acme-admin-key") as admin:
        for url in INTERNAL_WEBHOOK_URLS:
            r = await admin.put("/v1/channel-config", json={"webhook": {"url": url, "secret": SECRET}})
            if r.status_code != 422 or r.json()["errors"][0]["field"] != "webhook.url":
                accepted.append((url, r.status_code, r.text[:200]))
        assert accepted == []
        assert (await admin.get("/v1/channel-config")).json()["webhook"]["url"] is None, "nothing was saved"
        ok = await admin.put(
            "/v1/channel-config", json={"webhook": {"url": "https://hooks.acme.example/dunning", "secret": SECRET}}
        )
        assert ok.status_code == 200, ok.text


async def test_a_webhook_name_that_resolves_to_loopback_when_sending_is_refused_and_fails_the_delivery(
    notifier: RunningService, feed: EventFeed, notifications: TopicReader, receiver: Receiver
) -> None:
    with FakeDns({"hooks.acme.example": ["127.0.0.1"]}):
        async with notifier.client("acme-admin-key") as admin:
            url = f"http://hooks.acme.example:{receiver.server.port}/hooks/dunning"
            r = await admin.put("/v1/channel-config", json={"webhook": {"url": url, "secret": SECRET}})
            assert r.status_code == 200, "a public-looking name is accepted when configured"
        await feed.publish(feed.customer(), feed.invoice())
        await feed.publish(feed.step(channels=["webhook"]))
        [failed] = await notifications.wait_for("notification.failed")
    assert failed.data.permanent is True
    assert "internal addresses are not allowed" in failed.data.reason and "loopback" in failed.data.reason
    assert receiver.calls == 0, "no signed reminder reached the internal address"
