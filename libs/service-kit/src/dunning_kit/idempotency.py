"""`Idempotency-Key` on the requests that create something: a retried request gets the first answer back.

Every POST (and the PUT that creates a template) that makes something new accepts the header; a client that
did not hear the answer (a timeout, a dropped connection) sends the same request with the same key again:

* same key, same request (method, path, body) -> the first response, replayed (`Idempotent-Replayed: true`);
* same key, another request -> 422 naming `Idempotency-Key` (a key names one request);
* two requests with one key at the same time -> one write: the second waits on the key's row (up to
  DB_LOCK_TIMEOUT_MS, then a 503 to retry) and gets the first one's response;
* a request that failed (any answer but 2xx) stores nothing, so the client may fix it and retry with the key;
* keys expire after IDEMPOTENCY_KEY_TTL_HOURS (24 h by default, by the service's clock): an older key is new
  again, and the runtime's housekeeping deletes expired keys (as it prunes the inbox).

Keys are per tenant (the API key's), in one table per service (`idempotency_keys`, added by
`plumbing_tables`). Two ways to use it:

* `Idempotent` on a route (`dependencies=[Idempotent]`) and the app's middleware does it all: it claims the
  key in a transaction of its own that stays open while the route runs (so a concurrent duplicate waits), and
  stores the response when the route answered 2xx. The route's write and the key are two commits: a process
  killed between them leaves the write without its key (the next retry writes again), which is why
* a route that writes in one transaction it owns claims and remembers the key inside it (`claim`,
  `remember`; ledger-sync's ledger writes): the write and its key commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header
from fastapi.routing import APIRoute
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, delete, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dunning_kit.actor import replaying
from dunning_kit.app_routes import ApiRoute, api_routes
from dunning_kit.auth import ApiKeyRegistry
from dunning_kit.problems import FieldError, invalid_input

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REPLAYED = "Idempotent-Replayed"
TABLE = "idempotency_keys"
_PENDING = 0  # status_code of a key claimed by a request still running


def idempotency_table(metadata: MetaData) -> Table:
    """The keys of one service: added to its metadata by `plumbing_tables` (its migration creates it)."""
    if TABLE in metadata.tables:
        return metadata.tables[TABLE]
    return Table(
        TABLE,
        metadata,
        Column("tenant_id", String(100), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    )


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """Hash of what the request asks for; JSON bodies are canonicalised so key order does not matter."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except ValueError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def key_problem(key: str | None) -> list[FieldError]:
    """What is wrong with the header's value (nothing when it is absent)."""
    if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
        return [FieldError(HEADER, f"must be 1 to {MAX_KEY_LENGTH} characters", "header")]
    return []


REUSED = FieldError(
    HEADER, "this key was already used with a different request; use a new key for a new request", "header"
)


@dataclass
class Stored:
    request_hash: str
    status_code: int
    response: Any


async def claim(
    db: AsyncSession | AsyncConnection,
    table: Table,
    tenant_id: str,
    key: str,
    fingerprint: str,
    *,
    now: datetime,
    ttl: timedelta,
) -> Stored | None:
    """Reserve the key inside the caller's transaction; the stored outcome if it was used (and has not expired).

    A concurrent claim of the same key waits here until this transaction ends (the row's lock)."""
    t = table
    claimed = await db.scalar(
        insert(t)
        .values(
            tenant_id=tenant_id, key=key, request_hash=fingerprint, status_code=_PENDING, response={}, created_at=now
        )
        .on_conflict_do_update(
            index_elements=[t.c.tenant_id, t.c.key],
            set_={"request_hash": fingerprint, "status_code": _PENDING, "response": {}, "created_at": now},
            where=t.c.created_at < now - ttl,  # an expired key is a new key
        )
        .returning(t.c.key)
    )
    if claimed is not None:
        return None
    replaying()  # what this transaction commits now is no change to audit (dunning_kit.audit_log)
    row = (
        await db.execute(
            select(t.c.request_hash, t.c.status_code, t.c.response).where(t.c.tenant_id == tenant_id, t.c.key == key)
        )
    ).one()
    return Stored(row.request_hash, row.status_code, row.response)


async def remember(
    db: AsyncSession | AsyncConnection,
    table: Table,
    tenant_id: str,
    key: str,
    status_code: int,
    response: Any,
    fingerprint: str | None = None,
) -> None:
    values: dict[str, Any] = {"status_code": status_code, "response": response}
    if fingerprint is not None:
        values["request_hash"] = fingerprint
    await db.execute(update(table).where(table.c.tenant_id == tenant_id, table.c.key == key).values(**values))


async def prune_keys(engine: AsyncEngine, table: Table, expired_before: datetime) -> int:
    """Delete the keys that have expired; returns how many."""
    async with engine.begin() as conn:
        result = await conn.execute(delete(table).where(table.c.created_at < expired_before))
    return int(result.rowcount or 0)


# ------------------------------------------------------------------------------------ routes and middleware


def _idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="Makes a retry safe: the same key with the same request replays the first 2xx response "
            f"(`{REPLAYED}: true`); with another request it is a 422. Keys are per tenant and expire after "
            "IDEMPOTENCY_KEY_TTL_HOURS (24 h by default).",
        ),
    ] = None,
) -> str | None:
    return key


Idempotent = Depends(_idempotency_key)  # `dependencies=[Idempotent]`: the middleware below handles the key


def _marked(route: APIRoute) -> bool:
    return any(d.call is _idempotency_key for d in route.dependant.dependencies)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _bearer(scope: Scope) -> str | None:
    authorization = _header(scope, b"authorization") or ""
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return _header(scope, b"x-api-key")


class IdempotencyKeys:
    """ASGI middleware for the routes marked `Idempotent` (see the module docstring).

    The request body is hashed as the route reads it (a CSV import streams; nothing is buffered here); a key
    seen before is answered once the whole body has been read and compared."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: list[ApiRoute] | None = None

    def _idempotent(self, scope: Scope) -> bool:
        if self._routes is None:  # the routes are all declared by the first request
            fastapi: FastAPI = scope["app"]
            self._routes = [r for r in api_routes(fastapi) if _marked(r.route)]
        return any(route.matches(scope["method"], scope["path"]) for route in self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, HEADER.lower().encode()) if scope["type"] == "http" else None
        if key is None or not self._idempotent(scope):
            await self.app(scope, receive, send)
            return
        if problems := key_problem(key):
            await invalid_input(problems, instance=scope["path"])(scope, receive, send)
            return
        state = scope["app"].state
        registry: ApiKeyRegistry = state.api_keys
        presented = _bearer(scope)
        principal = registry.authenticate(presented) if presented else None
        if principal is None:
            await self.app(scope, receive, send)  # the route answers the 401
            return
        runtime = state.runtime
        table: Table = runtime.idempotency_table
        ttl = timedelta(hours=runtime.settings.idempotency_key_ttl_hours)
        digest = hashlib.sha256(f"{scope['method']} {scope['path']}\n".encode())

        async def hashed() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                digest.update(message.get("body", b""))
            return message

        async with runtime.engine.connect() as conn, conn.begin() as transaction:
            stored = await claim(conn, table, principal.tenant_id, key, "", now=runtime.clock.now(), ttl=ttl)
            if stored is not None:
                await transaction.rollback()
                while (await hashed()).get("more_body", False):
                    pass  # the whole body decides: same request or another one
                if stored.request_hash != digest.hexdigest():
                    await invalid_input([REUSED], detail="idempotency key reused", instance=scope["path"])(
                        scope, receive, send
                    )
                    return
                await _replay(stored, send)
                return
            answer = _Recorder(send)
            await self.app(scope, hashed, answer.send)
            if answer.replayable():
                await remember(conn, table, principal.tenant_id, key, answer.status, answer.json(), digest.hexdigest())
            else:
                await transaction.rollback()  # a failed request leaves the key unused


async def _replay(stored: Stored, send: Send) -> None:
    body = json.dumps(stored.response, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REPLAYED.lower().encode(), b"true"),
    ]
    await send({"type": "http.response.start", "status": stored.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Recorder:
    """Passes the response on and keeps a copy of it, to be stored with the key."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0
        self.json_body = False
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            content_type = dict(message.get("headers") or ()).get(b"content-type", b"")
            self.json_body = content_type.split(b";")[0].strip() == b"application/json"
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
        await self._send(message)

    def replayable(self) -> bool:
        return 200 <= self.status < 300 and self.json_body

    def json(self) -> Any:
        return json.loads(b"".join(self.chunks) or b"null")
