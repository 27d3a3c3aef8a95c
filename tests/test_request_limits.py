"""Limits on what the public can send (issue 12, point 6), through the services' own apps on real sockets:
a body over its route's limit is refused before it is read (413), and the routes anyone can reach without a
key - ERP webhooks, customer pages, /metrics, /quietz - answer 429 with Retry-After past a client's rate."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest_asyncio

from dunning_kit.clock import SimulatedClock
from dunning_kit.request_limits import RateLimiter, client_of
from dunning_kit.services import spec
from dunning_kit.testing import RunningService, start_service

StartService = Callable[..., Awaitable[RunningService]]


@pytest_asyncio.fixture
async def start(database_url: str, broker: Any, clock: SimulatedClock) -> AsyncIterator[StartService]:
    running: list[RunningService] = []

    async def go(name: str, **overrides: Any) -> RunningService:
        svc = await start_service(
            spec(name), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
            overrides=overrides,
        )  # fmt: skip
        running.append(svc)
        return svc

    yield go
    for svc in reversed(running):
        await svc.stop()


async def _connect(svc: RunningService) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlsplit(svc.base_url)
    return await asyncio.open_connection(url.hostname, url.port)


async def _status(reader: asyncio.StreamReader, timeout: float = 5.0) -> int:
    line = await asyncio.wait_for(reader.readline(), timeout)
    return int(line.split()[1])


async def test_a_declared_oversized_body_is_refused_before_a_byte_of_it_is_sent(start: StartService) -> None:
    ledger = await start("ledger-sync", webhook_max_body_bytes=65_536, import_max_body_bytes=100_000)
    for path, length in (("/webhooks/xero", 65_537), ("/v1/imports/invoices", 100_001)):
        reader, writer = await _connect(ledger)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer acme-api-key\r\n"
            f"Content-Type: text/csv\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        await writer.drain()
        try:
            # Nothing of the body was sent: the answer comes from the headers alone.
            assert await _status(reader) == 413, path
            rest = (await asyncio.wait_for(reader.read(4096), 5)).decode()
            assert "request body larger than" in rest and "application/problem+json" in rest
        finally:
            writer.close()


async def _stream(svc: RunningService, head: bytes, total: int) -> tuple[int, int]:
    """(status, bytes sent) of a chunked body of `total` bytes, sent until the service answers."""
    reader, writer = await _connect(svc)
    writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
    answer = asyncio.ensure_future(_status(reader, timeout=30))
    chunk = b"x" * 65_536
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < total and not answer.done():
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await asyncio.wait_for(writer.drain(), 5)
            sent += len(chunk)
            await asyncio.sleep(0)  # a yield, not a wait: lets the reader see the 413 between chunks
    try:
        return await answer, sent
    finally:
        writer.close()


async def test_a_streamed_body_is_cut_off_at_the_limit_not_read_whole(start: StartService) -> None:
    ledger = await start("ledger-sync", webhook_max_body_bytes=65_536, max_request_body_bytes=65_536)
    # 64 MiB offered, 64 KiB allowed: a webhook reads its body whole before checking the signature.
    status, sent = await _stream(
        ledger, b"POST /webhooks/quickbooks HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n", 64 << 20
    )
    assert status == 413
    # What went out past the limit sat in socket buffers; the service stopped reading at 64 KiB.
    assert sent < 16 << 20, f"{sent} bytes went out before the refusal"
    # A JSON API route (FastAPI parses the body) is refused the same way, not with a 400 or a 500.
    status, sent = await _stream(
        ledger,
        b"POST /v1/customers HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer acme-api-key\r\n"
        b"Content-Type: application/json\r\n",
        64 << 20,
    )
    assert status == 413 and sent < 16 << 20, (status, sent)


async def test_a_body_within_the_limit_still_reaches_the_webhook(start: StartService) -> None:
    ledger = await start("ledger-sync", webhook_max_body_bytes=65_536)
    async with ledger.client(None) as http:
        response = await http.post("/webhooks/xero", content=b'{"events": []}')
    assert response.status_code == 401, "read and checked: an unsigned webhook is refused by its signature"


async def test_public_pages_get_429_with_retry_after_per_client(start: StartService) -> None:
    promises = await start("promise-tracker", rate_limit_pages_per_minute=5, trusted_proxy_hops=1)
    async with promises.client(None) as http:
        first = [await http.get("/self-service/promise", headers={"X-Forwarded-For": "203.0.113.7"}) for _ in range(5)]
        assert all(r.status_code != 429 for r in first), [r.status_code for r in first]
        limited = await http.get("/self-service/promise", headers={"X-Forwarded-For": "203.0.113.7"})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 12, limited.headers
        assert limited.json()["title"] == "Too Many Requests"
        # Another client (the address the trusted proxy saw; what a client prepends itself does not count).
        other = await http.get("/self-service/promise", headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.9"})
        assert other.status_code != 429
        # The API itself is not a public page: keys and scopes guard it, not this limit.
        assert (await http.get("/healthz")).status_code == 200


async def test_metrics_quietz_and_erp_webhooks_are_rate_limited_per_client(start: StartService) -> None:
    ledger = await start("ledger-sync", rate_limit_operations_per_minute=3, rate_limit_webhooks_per_minute=2)
    async with ledger.client(None) as http:
        codes = [(await http.get(path)).status_code for path in ("/metrics", "/quietz", "/metrics", "/metrics")]
        assert codes[:3] != [429] * 3 and 429 not in codes[:3] and codes[3] == 429, codes
        hooks = [(await http.post("/webhooks/xero", content=b"{}")).status_code for _ in range(3)]
        assert hooks == [401, 401, 429], hooks
        assert (await http.get("/healthz")).status_code == 200 and (await http.get("/readyz")).status_code == 200


def test_a_clients_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    now = [1000.0]
    limiter = RateLimiter(now=lambda: now[0])
    assert [limiter.take("pages", "a", 60) for _ in range(60)] == [0.0] * 60
    assert limiter.take("pages", "a", 60) == 1.0, "one request a second: the next one in a second"
    assert limiter.take("pages", "b", 60) == 0.0 and limiter.take("webhooks", "a", 60) == 0.0
    now[0] += 0.5
    assert limiter.take("pages", "a", 60) == 0.5
    now[0] += 0.5
    assert limiter.take("pages", "a", 60) == 0.0


def test_the_client_is_what_the_outermost_trusted_proxy_saw() -> None:
    scope = {"client": ("10.0.0.5", 1234), "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.0.0.9")]}
    assert client_of(scope, 0) == "10.0.0.5"
    assert client_of(scope, 1) == "10.0.0.9"
    assert client_of(scope, 2) == "203.0.113.7"
    assert client_of(scope, 9) == "6.6.6.6"
