"""Calling a provider's HTTP API: one client per provider, failures classified for retry or not.

At most once decides the classification: a retry is only safe when the provider certainly did not take
the message (connection refused, 429) - or when it de-duplicates on a key we pass. A timeout after the request
went out, a connection lost mid-request and a 5xx (a server may fail after it acted) are "outcome unknown":
retried only for providers that honour our idempotency key, otherwise the delivery ends `unknown`.

Every request has a total deadline (PROVIDER_DEADLINE_SECONDS, dunning_kit.http_deadline) besides the per-read
timeout: a server trickling its answer a byte at a time costs at most the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from dunning_kit.http_deadline import within_deadline
from notifier.domain.messages import OutcomeUnknownError, PermanentSendError, SendError, TransientSendError

# Used where a provider adapter is built without a deadline of its own (tests, scripts); the service passes
# PROVIDER_DEADLINE_SECONDS.
DEFAULT_DEADLINE_SECONDS = 30.0


class RateLimiter:
    """Token bucket in wall time (provider limits are about real seconds, not the simulated clock)."""

    def __init__(self, per_second: float, burst: float | None = None) -> None:
        self.rate = max(per_second, 0.001)
        self.capacity = burst if burst is not None else max(1.0, per_second)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def provider_timeout(seconds: float) -> httpx.Timeout:
    """Connect/read/write bounded; no pool timeout: a batch queues for a free connection on our side, and
    that wait must never turn into a failed (and retried) send."""
    return httpx.Timeout(seconds, pool=None)


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_response(
    provider: str, response: httpx.Response, *, idempotent: bool, detail: str | None = None
) -> SendError:
    status = response.status_code
    text = detail or response.text[:300]
    if status == 429:
        return TransientSendError(
            f"{provider}: rate limited (429)", retry_after=retry_after_seconds(response), provider=provider
        )
    if status >= 500:
        if idempotent:
            return TransientSendError(f"{provider}: server error {status}: {text}", provider=provider)
        return OutcomeUnknownError(
            f"{provider}: server error {status}: {text}; the provider may have taken the message and takes no "
            "idempotency key: outcome unknown, not retried (at most once)",
            provider=provider,
        )
    return PermanentSendError(f"{provider}: rejected ({status}): {text}", provider=provider)


async def call(
    client: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    *,
    idempotent: bool,
    limiter: RateLimiter | None = None,
    slots: asyncio.Semaphore | None = None,
    deadline: float | None = DEFAULT_DEADLINE_SECONDS,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; raise a classified SendError for anything that is not 2xx.

    `slots` (as many as the client's connections) keeps a batch's requests queued here rather than in
    httpcore, which re-scans its whole queue of waiting requests on every release (O(n^2) CPU). `deadline`
    bounds the request in all (not the wait for a slot)."""
    if limiter is not None:
        await limiter.acquire()
    try:
        if slots is None:
            response = await within_deadline(client.request(method, url, **kwargs), deadline)
        else:
            async with slots:
                response = await within_deadline(client.request(method, url, **kwargs), deadline)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise TransientSendError(f"{provider}: cannot connect ({type(exc).__name__})", provider=provider) from exc
    except httpx.TimeoutException as exc:
        if idempotent:
            raise TransientSendError(f"{provider}: timed out; retrying with the same key", provider=provider) from exc
        raise OutcomeUnknownError(
            f"{provider}: timed out after the request was sent ({exc}); outcome unknown, not retried (at most once)",
            provider=provider,
        ) from exc
    except httpx.TransportError as exc:
        if idempotent:
            raise TransientSendError(f"{provider}: {type(exc).__name__}", provider=provider) from exc
        raise OutcomeUnknownError(
            f"{provider}: connection lost mid-request ({type(exc).__name__}); outcome unknown, not retried",
            provider=provider,
        ) from exc
    if response.status_code >= 300:
        raise error_from_response(provider, response, idempotent=idempotent)
    return response


def json_or_empty(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
