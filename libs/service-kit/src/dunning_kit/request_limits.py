"""Limits on what the public can send: a body size per route and a request rate per client.

One ASGI middleware, outermost in every service (create_service_app), with the rules each service declares for
its routes (`RouteLimits`) on top of the kit's own (/metrics and /quietz):

* **Body size, before buffering.** A `Content-Length` over the route's limit is answered 413 before one byte of
  the body is read (and a client that sent `Expect: 100-continue` never gets its 100). A body without a length
  (chunked) is counted as it is read and refused as soon as it passes the limit, whoever reads it - a webhook
  that reads it whole before checking its signature, FastAPI parsing JSON, the CSV import spooling it to disk.
* **Rate per client** on the routes anyone can reach without an API key - the customer pages, the providers'
  and ERPs' webhooks, /metrics and /quietz: a token bucket per (group, client), refilled continuously, so a
  client may burst up to its per-minute allowance and then gets 429 with `Retry-After` (seconds until its next
  request is allowed). Wall time on purpose (like the providers' rate limits): a simulated clock jumping days
  must not refill a bucket. Buckets live in the replica's memory: with N replicas a client gets up to N times
  the allowance, which is still a bound, and needs nothing shared.

The client is the peer address, or - behind `TRUSTED_PROXY_HOPS` reverse proxies that append to
`X-Forwarded-For` - the address the outermost trusted proxy saw (the N-th from the right; what a client writes
itself further left is ignored).
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dunning_kit.problems import PROBLEM_JSON, Problem, title_of

_MAX_CLIENTS = 10_000  # buckets kept per group; the least recently seen client is forgotten first


@dataclass(frozen=True)
class RouteLimits:
    """The limits of the routes under `path` (that path itself, or anything below it)."""

    path: str
    max_body_bytes: int | None = None  # None: the service's MAX_REQUEST_BODY_BYTES
    rate_per_minute: int | None = None  # None or 0: no rate limit
    group: str = ""  # clients are counted per group: webhooks do not use up a client's page allowance

    def matches(self, path: str) -> bool:
        base = self.path.rstrip("/")
        return path == base or path.startswith(base + "/")


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body passes its route's limit. An HTTPException, so whatever is reading the
    body (FastAPI turns other errors into a 400 "error parsing the body") lets it through to the 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")
        self.limit = limit


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    """Token buckets per (group, client): `per_minute` requests of burst, refilled at per_minute/60 a second."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._buckets: dict[str, OrderedDict[str, _Bucket]] = {}

    def take(self, group: str, client: str, per_minute: int) -> float:
        """0 when the request may go; else the seconds until it may."""
        now = self._now()
        rate = per_minute / 60.0
        buckets = self._buckets.setdefault(group, OrderedDict())
        bucket = buckets.pop(client, None)
        if bucket is None:
            bucket = _Bucket(float(per_minute), now)
        else:
            bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        buckets[client] = bucket  # most recently seen last
        if len(buckets) > _MAX_CLIENTS:
            buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate


def client_of(scope: Scope, trusted_proxy_hops: int) -> str:
    if trusted_proxy_hops > 0:
        for name, value in scope.get("headers") or ():
            if name == b"x-forwarded-for":
                hops = [h.strip() for h in value.decode("latin-1").split(",") if h.strip()]
                if hops:
                    return str(hops[-min(trusted_proxy_hops, len(hops))])
    peer = scope.get("client")
    return str(peer[0]) if peer else "unknown"


class RequestLimits:
    """The ASGI middleware (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        routes: Sequence[RouteLimits] = (),
        trusted_proxy_hops: int = 0,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.routes = tuple(routes)
        self.trusted_proxy_hops = trusted_proxy_hops
        self.limiter = limiter or RateLimiter()

    def _route(self, path: str) -> RouteLimits | None:
        for route in self.routes:  # the first that matches: services list theirs before the kit's
            if route.matches(path):
                return route
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self._route(scope["path"])
        if route is not None and route.rate_per_minute:
            wait = self.limiter.take(
                route.group or route.path, client_of(scope, self.trusted_proxy_hops), route.rate_per_minute
            )
            if wait > 0:
                retry = max(1, math.ceil(wait))
                detail = f"more than {route.rate_per_minute} requests a minute from this client; retry in {retry}s"
                await _refuse(send, scope, Problem(429, title_of(429), detail, headers={"Retry-After": str(retry)}))
                return
        limit = route.max_body_bytes if route is not None and route.max_body_bytes is not None else self.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, scope, body_too_large(limit))
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:  # the app answered before it read on (cannot happen in our routes; nothing to add)
                return
            await _refuse(send, scope, body_too_large(limit))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


def body_too_large(limit: int) -> Problem:
    # `connection: close`: the rest of the body is not read, so the connection cannot carry another request.
    return Problem(413, title_of(413), f"request body larger than {limit} bytes", headers={"connection": "close"})


async def _refuse(send: Send, scope: Scope, problem: Problem) -> None:
    body = json.dumps(problem.body(scope["path"])).encode()
    raw: list[tuple[bytes, bytes]] = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items() if k.lower() != "connection"]
    await send({"type": "http.response.start", "status": problem.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
