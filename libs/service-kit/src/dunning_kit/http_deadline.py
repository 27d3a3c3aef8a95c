"""A total deadline for one outbound HTTP request to a partner: connect, send, every read and the whole body.

httpx's timeouts bound each operation, not the request: a server trickling one byte every 1.5 s never trips a
2-second read timeout, and held such a request open for 15 s (a 10 s read timeout: for as long as it likes).
Every call to a partner (provider APIs, tenant webhooks, ERP connectors) is awaited through `within_deadline`,
so a slow partner costs at most its deadline. Waiting for a connection slot or a rate limit on our side is not
part of the request and stays outside the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import httpx

T = TypeVar("T")


class DeadlineExceeded(httpx.TimeoutException):
    """The request's total deadline passed. An httpx timeout, so callers that classify timeouts (retry with
    an idempotency key, otherwise "outcome unknown") treat it as one."""


async def within_deadline(request: Awaitable[T], seconds: float | None) -> T:
    """Await one request (`client.request(...)`, `client.send(...)` - both read the whole body) for at most
    `seconds` in all; None: no total deadline. Raises DeadlineExceeded when it passes (the connection is
    dropped: httpx closes a connection whose request was cancelled)."""
    if seconds is None:
        return await request
    try:
        async with asyncio.timeout(seconds) as scope:
            return await request
    except TimeoutError as exc:
        if not scope.expired():  # a TimeoutError of the request's own, not our deadline
            raise
        raise DeadlineExceeded(f"no complete response within the request's deadline of {seconds:g} s") from exc
