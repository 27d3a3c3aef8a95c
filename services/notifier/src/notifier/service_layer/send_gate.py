"""The send gate: what a claimed delivery passes just before its provider call.

1. A slot of its provider: as many as the provider has connections (SMTP_POOL_SIZE, PROVIDER_MAX_CONNECTIONS),
   held until the call returns. A delivery that has a slot reaches its provider at once. A provider that calls
   each tenant's own endpoint (webhooks) first takes a slot of that tenant (WEBHOOK_MAX_CONNECTIONS_PER_TENANT):
   one tenant's slow endpoint holds at most that many of the provider's slots, never all of them.
2. Its `sending` mark, committed: `WHERE status = 'claimed' AND claim_token = <the batch's>`, so a delivery
   whose lease expired and was taken over by another dispatcher (or that was cancelled meanwhile) is not
   admitted and not sent.

So at most the slots' worth of deliveries can be `sending` without having reached the provider: those, with
the calls in flight, are what a crash can leave in doubt (`unknown`, never re-sent). Everything still
`claimed` is sent by whoever takes it over.

The marks are group-committed: one autocommitted UPDATE for every delivery waiting at the gate at that moment;
while it runs, the next group gathers. A commit costs ~2 ms here, so one statement per delivery would cap a
replica near 500 sends/s; under load the groups grow and the gate costs a few tens of µs per send.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dunning_events.bulk import raw_connection
from notifier.adapters import claims


@dataclass
class _TenantSlots:
    slots: asyncio.Semaphore
    users: int = 0  # holding or waiting: the entry goes when nobody does (no map of every tenant ever seen)


class SendGate:
    def __init__(
        self,
        engine: AsyncEngine,
        slots: Mapping[str, asyncio.Semaphore],
        default_slots: int,
        per_tenant: Mapping[str, int] | None = None,
    ) -> None:
        self.engine = engine
        self._per_tenant = dict(per_tenant or {})  # provider -> most slots one tenant may hold
        self._tenant_slots: dict[tuple[str, str], _TenantSlots] = {}
        # By provider name; providers sharing one connection pool (Twilio SMS and voice) share one semaphore.
        self._slots = dict(slots)
        self._default_slots = default_slots
        self._waiting: list[tuple[uuid.UUID, uuid.UUID, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # One connection kept for the marks: a pool checkout per group (with its pre-ping and reset) cost
        # more than the statement.
        self._conn: AsyncConnection | None = None

    def slot(self, provider: str) -> asyncio.Semaphore:
        sem = self._slots.get(provider)
        if sem is None:
            sem = self._slots[provider] = asyncio.Semaphore(self._default_slots)
        return sem

    def tenant_slot(self, provider: str, tenant_id: str) -> AbstractAsyncContextManager[None]:
        """Taken before the provider's slot, for providers that call the tenant's own endpoint."""
        limit = self._per_tenant.get(provider)
        if limit is None:
            return contextlib.nullcontext()
        return self._tenant_slot((provider, tenant_id), limit)

    @asynccontextmanager
    async def _tenant_slot(self, key: tuple[str, str], limit: int) -> AsyncIterator[None]:
        entry = self._tenant_slots.get(key)
        if entry is None:
            entry = self._tenant_slots[key] = _TenantSlots(asyncio.Semaphore(limit))
        entry.users += 1
        try:
            async with entry.slots:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._tenant_slots[key]

    async def admit(self, delivery_id: uuid.UUID, claim_token: uuid.UUID) -> bool:
        """True once the delivery's `sending` mark has committed; False if it is no longer this claim's.

        Raises what the database raised: then the delivery was not admitted (it stays `claimed`) - or, if the
        connection broke after the commit, it is `sending` and the stuck sweep reports it. Never sent twice."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery_id, claim_token, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="send-gate")
        return await future

    async def _flush(self) -> None:
        group: list[tuple[uuid.UUID, uuid.UUID, asyncio.Future[bool]]] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    admitted = await self._mark_sending([g[0] for g in group], [g[1] for g in group])
                except Exception as exc:
                    _fail(group, exc)
                    continue
                for delivery_id, _, future in group:
                    if not future.done():
                        future.set_result(delivery_id in admitted)
        except BaseException:  # cancelled (shutdown): nobody may wait forever on a mark that will not come
            _fail(group + self._waiting, ConnectionError("the send gate stopped"))
            self._waiting = []
            raise
        finally:
            self._flusher = None

    async def _mark_sending(self, ids: list[uuid.UUID], tokens: list[uuid.UUID]) -> set[uuid.UUID]:
        if self._conn is None:
            self._conn = await self.engine.connect()
        conn = self._conn
        try:
            # Straight on the driver, outside any transaction: the one statement commits on its own (no
            # BEGIN/COMMIT round trips), and asyncpg takes the arrays without a parameter dict per row.
            apg = await raw_connection(conn, in_transaction=False)
            rows = await apg.fetch(claims.MARK_SENDING, ids, tokens)
        except BaseException:
            self._conn = None  # whatever broke, the next group starts on a fresh connection
            await _discard(conn)
            raise
        return {r[0] for r in rows}

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _discard(conn)


async def _discard(conn: AsyncConnection) -> None:
    try:
        await conn.invalidate()
        await conn.close()
    except Exception:  # closing a broken connection must never mask the error that broke it
        pass


def _fail(group: list[tuple[uuid.UUID, uuid.UUID, asyncio.Future[bool]]], exc: Exception) -> None:
    for _, _, future in group:
        if not future.done():
            future.set_exception(exc)
