"""Idempotency-Key on POST: the first response is stored in the write's own transaction and replayed.

Same key + same request -> the stored response (header `Idempotent-Replayed: true`); same key + another
request -> 422 naming `Idempotency-Key`. A request that failed validation stores nothing, so the client
may fix it and retry with the same key. Two concurrent requests with one key serialise on the key's row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ledger_sync.adapters import orm

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """Hash of what the request asks for; JSON bodies are canonicalised so key order does not matter."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except ValueError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


@dataclass
class Stored:
    request_hash: str
    status_code: int
    response: Any


async def claim(session: AsyncSession, tenant_id: str, key: str, fingerprint: str) -> Stored | None:
    """Reserve the key for this transaction; returns the stored outcome if the key was used before."""
    t = orm.idempotency_keys
    claimed = await session.scalar(
        insert(t)
        .values(tenant_id=tenant_id, key=key, request_hash=fingerprint, status_code=0, response={})
        .on_conflict_do_nothing()
        .returning(t.c.key)
    )
    if claimed is not None:
        return None
    row = (
        await session.execute(
            select(t.c.request_hash, t.c.status_code, t.c.response).where(t.c.tenant_id == tenant_id, t.c.key == key)
        )
    ).one()
    return Stored(row.request_hash, row.status_code, row.response)


async def remember(session: AsyncSession, tenant_id: str, key: str, status_code: int, response: Any) -> None:
    t = orm.idempotency_keys
    await session.execute(
        update(t).where(t.c.tenant_id == tenant_id, t.c.key == key).values(status_code=status_code, response=response)
    )
