"""Delivery records in SQL: written per step and channel, moved through their outcomes, read back by
receipts and opt-outs. Every outcome move is conditional on the status it leaves, so whoever commits first
wins and the other finds no row (and emits nothing).

The per-batch statements take one array per column (asyncpg encodes them in C): SQLAlchemy's executemany
builds a parameter dict per row in Python, which cost more than the statements themselves. `id = ANY` puts
the primary key in charge: a join on unnest() alone may be planned as a scan of the whole table."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import RowMapping, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.bulk import ArrayInsert, raw_connection
from notifier.adapters import orm

# ------------------------------------------------------------------ new records

# One statement per batch: the rows travel as one array per column (asyncpg encodes them in C) instead of
# SQLAlchemy building a parameter dict per row - that per-row Python was most of the consumer's CPU.
_INSERT_DELIVERIES = ArrayInsert(
    "deliveries",
    [
        ("id", "uuid"), ("tenant_id", "text"), ("customer_id", "text"), ("step_id", "text"), ("channel", "text"),
        ("idempotency_key", "text"), ("step", "text"), ("channel_mode", "text"), ("fallback_channels", "text"),
        ("next_attempt_at", "timestamptz"), ("correlation_id", "uuid"), ("trace_context", "text"),
    ],
    values={"step": "u.step::jsonb", "fallback_channels": "u.fallback_channels::jsonb",
            "trace_context": "u.trace_context::jsonb"},
    tail="ON CONFLICT (idempotency_key) DO NOTHING",
)  # fmt: skip


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        # The unique key makes a redelivered step (or a second fallback attempt) a no-op.
        await _INSERT_DELIVERIES.execute(
            await raw_connection(session),
            (
                [r["id"] for r in rows],
                [r["tenant_id"] for r in rows],
                [r["customer_id"] for r in rows],
                [r["step_id"] for r in rows],
                [r["channel"] for r in rows],
                [r["idempotency_key"] for r in rows],
                [_json(r["step"]) for r in rows],
                [r.get("channel_mode") or "all" for r in rows],
                [_json(r.get("fallback_channels") or []) for r in rows],
                [r["next_attempt_at"] for r in rows],
                [r.get("correlation_id") for r in rows],
                [_json(r.get("trace_context") or {}) for r in rows],
            ),
        )


# ------------------------------------------------------------------ what the step events change


async def cancel_step_deliveries(
    session: AsyncSession, tenant_id: str, step_id: str, statuses: tuple[str, ...], error: str, now: datetime
) -> None:
    d = orm.deliveries.c
    await session.execute(
        update(orm.deliveries)
        .where(d.tenant_id == tenant_id, d.step_id == step_id, d.status.in_(statuses))
        .values(status="cancelled", error=error, claimed_until=None, updated_at=now)
    )


# The new window replaces the old one in the stored step, so the dispatcher and its send gate judge the
# delivery by it; due at the window's start. Same row, same idempotency key: still sent at most once, and the
# policy engine's contact caps count it once.
_REPLAN = text(
    """
    UPDATE deliveries
    SET status = 'pending', next_attempt_at = :deliver_from, error = NULL, claim_token = NULL,
        claimed_until = NULL, updated_at = now(),
        step = step || jsonb_build_object('deliver_from', CAST(:from_json AS text),
                                          'deliver_until', CAST(:until_json AS text))
    WHERE tenant_id = :tenant_id AND step_id = :step_id AND status = 'held'
    """
)


async def release_held(
    session: AsyncSession, tenant_id: str, step_id: str, deliver_from: datetime, window_json: Mapping[str, Any]
) -> None:
    """The step's held deliveries get the new window (as dunning.step.due has it) and are due at its start."""
    await session.execute(
        _REPLAN,
        {
            "tenant_id": tenant_id,
            "step_id": step_id,
            "deliver_from": deliver_from,
            "from_json": window_json["deliver_from"],
            "until_json": window_json["deliver_until"],
        },
    )


# ------------------------------------------------------------------ outcomes of provider calls

# Conditional on `sending`, as is the stuck sweep: never `unknown` and then `sent` with both events.
# `RETURNING id` says which rows this write won; only those get their event.
_MARK_SENT = text(
    """
    UPDATE deliveries AS d
    SET status = 'sent', provider_message_id = u.pmid, provider = u.provider, error = NULL, sent_at = :now,
        updated_at = now()
    FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_pmid AS text[]), CAST(:b_provider AS text[])) AS u(id, pmid, provider)
    WHERE d.id = ANY(CAST(:b_id AS uuid[])) AND d.id = u.id AND d.status = 'sending'
    RETURNING d.id
    """
)
# A provider's answer that came after the sweep had written the call off as `unknown`: the status (and the
# event already emitted) stand, but the provider's id is kept, so a delivery receipt can still find the row
# and report it delivered or bounced.
_KEEP_LATE_RECEIPT = text(
    """
    UPDATE deliveries AS d SET provider_message_id = u.pmid
    FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_pmid AS text[]), CAST(:b_provider AS text[])) AS u(id, pmid, provider)
    WHERE d.id = ANY(CAST(:b_id AS uuid[])) AND d.id = u.id AND d.status = 'unknown'
      AND d.provider_message_id IS NULL
    """
)
_MARK_RETRY = text(
    """
    UPDATE deliveries AS d SET status = 'pending', next_attempt_at = u.at, error = u.error, updated_at = now()
    FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_at AS timestamptz[]), CAST(:b_error AS text[])) AS u(id, at, error)
    WHERE d.id = ANY(CAST(:b_id AS uuid[])) AND d.id = u.id AND d.status = 'sending'
    RETURNING d.id
    """
)
# `failed`, or `unknown` when the provider may have taken the message.
_MARK_FAILED = text(
    """
    UPDATE deliveries AS d SET status = u.status, error = u.error, updated_at = now()
    FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_status AS text[]), CAST(:b_error AS text[])) AS u(id, status, error)
    WHERE d.id = ANY(CAST(:b_id AS uuid[])) AND d.id = u.id AND d.status = 'sending'
    RETURNING d.id
    """
)


async def mark_sent(
    session: AsyncSession,
    ids: list[uuid.UUID],
    provider_message_ids: list[str | None],
    providers: list[str],
    now: datetime,
) -> set[uuid.UUID]:
    """One entry per row in each list: the rows this write moved from `sending` to `sent`."""
    params = {"b_id": ids, "b_pmid": provider_message_ids, "b_provider": providers, "now": now}
    return set((await session.execute(_MARK_SENT, params)).scalars())


async def keep_late_receipts(
    session: AsyncSession, ids: list[uuid.UUID], provider_message_ids: list[str | None], providers: list[str]
) -> None:
    """What mark_sent was given, for the rows it did not win (already `unknown`)."""
    await session.execute(_KEEP_LATE_RECEIPT, {"b_id": ids, "b_pmid": provider_message_ids, "b_provider": providers})


async def mark_retry(
    session: AsyncSession, ids: list[uuid.UUID], due_at: list[datetime], errors: list[str]
) -> list[uuid.UUID]:
    """`pending` again, due later; the rows this write won."""
    return list((await session.execute(_MARK_RETRY, {"b_id": ids, "b_at": due_at, "b_error": errors})).scalars())


async def mark_failed(
    session: AsyncSession, ids: list[uuid.UUID], statuses: list[str], errors: list[str]
) -> set[uuid.UUID]:
    """`failed`, or `unknown` when the provider may have taken the message; the rows this write won."""
    params = {"b_id": ids, "b_status": statuses, "b_error": errors}
    return set((await session.execute(_MARK_FAILED, params)).scalars())


async def mark_stuck_unknown(session: AsyncSession, stuck_after_seconds: float, reason: str) -> list[Any]:
    """`sending` for longer than `stuck_after_seconds` of wall-clock (database) time - a simulated clock jumping
    days must not expire an in-flight call: `unknown`, the rows returned."""
    d = orm.deliveries.c
    return list(
        (
            await session.execute(
                update(orm.deliveries)
                .where(
                    d.status == "sending",
                    d.updated_at < func.now() - text(f"interval '{int(stuck_after_seconds)} seconds'"),
                )
                .values(status="unknown", error=reason, updated_at=func.now())
                .returning(orm.deliveries)
            )
        )
        .mappings()
        .all()
    )


# ------------------------------------------------------------------ receipts and opt-outs


def _record(row: RowMapping | None) -> Mapping[str, Any] | None:
    """A row read by column name (SQLAlchemy types its keys as names or columns)."""
    return cast(Mapping[str, Any] | None, row)


async def delivery_by_provider_id(session: AsyncSession, provider_message_id: str) -> Mapping[str, Any] | None:
    d = orm.deliveries.c
    result = await session.execute(select(orm.deliveries).where(d.provider_message_id == provider_message_id))
    return _record(result.mappings().first())


async def delivery_by_id(session: AsyncSession, delivery_id: Any) -> Mapping[str, Any] | None:
    d = orm.deliveries.c
    return _record((await session.execute(select(orm.deliveries).where(d.id == delivery_id))).mappings().first())


async def mark_delivered(session: AsyncSession, delivery_id: Any, now: datetime) -> bool:
    """Forward only: a receipt never undoes a bounce."""
    d = orm.deliveries.c
    moved = (
        await session.execute(
            update(orm.deliveries)
            .where(d.id == delivery_id, d.status.in_(("sent", "unknown")))
            .values(status="delivered", updated_at=now)
            .returning(d.id)
        )
    ).first()
    return moved is not None


async def mark_bounced(session: AsyncSession, delivery_id: Any, reason: str | None, now: datetime) -> bool:
    d = orm.deliveries.c
    moved = (
        await session.execute(
            update(orm.deliveries)
            .where(d.id == delivery_id, d.status.in_(("sent", "delivered", "unknown")))
            .values(status="bounced", error=reason, updated_at=now)
            .returning(d.id)
        )
    ).first()
    return moved is not None


async def customers_messaged_at(
    session: AsyncSession, channels: tuple[str, ...], address: str
) -> list[tuple[str, str]]:
    """(tenant, customer) pairs we have messaged at this address or number on these channels."""
    d = orm.deliveries.c
    rows = await session.execute(
        select(d.tenant_id, d.customer_id).where(d.recipient == address, d.channel.in_(channels)).distinct()
    )
    return [(t, c) for t, c in rows.all()]
