"""What the notifier does with dunning.steps.v1: one delivery record per (tenant, customer, step, channel),
written before anything is sent; a cancelled step cancels its deliveries that have not started; a replanned
step (a new contact window for deliveries held outside the old one) makes its held deliveries due again."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.bulk import ArrayInsert, raw_connection
from dunning_events.consumer import ConsumedEvent
from dunning_events.envelope import Envelope
from dunning_events.events import DunningStepCancelled, DunningStepDue, DunningStepReplanned
from dunning_events.tracing import current_trace_headers
from dunning_kit.clock import Clock
from notifier.adapters import orm


def idempotency_key(tenant_id: str, customer_id: str, step_id: str, channel: str) -> str:
    return f"{tenant_id}:{customer_id}:{step_id}:{channel}"


def delivery_rows(env: Envelope[DunningStepDue], now: datetime) -> list[dict[str, Any]]:
    """`all`: a record per channel. `fallback`: only the first; the next is created if it fails."""
    d = env.data
    step = d.model_dump(mode="json")
    channels = list(dict.fromkeys(d.channels))
    trace_context = current_trace_headers()  # called inside the step event's consumer span
    if d.channel_mode == "fallback":
        plan = [(channels[0], channels[1:])] if channels else []
    else:
        plan = [(c, []) for c in channels]
    return [
        {
            "id": uuid.uuid4(),
            "tenant_id": env.tenant_id,
            "customer_id": d.customer_id,
            "step_id": d.step_id,
            "channel": channel,
            "idempotency_key": idempotency_key(env.tenant_id, d.customer_id, d.step_id, channel),
            "step": step,
            "channel_mode": d.channel_mode,
            "fallback_channels": rest,
            "next_attempt_at": now,
            "correlation_id": env.correlation_id,
            "trace_context": trace_context,
        }
        for channel, rest in plan
    ]


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


# Not yet handed to a provider: waiting (pending), rendered in a dispatcher's hands (claimed; its send gate
# then finds the row no longer claimed and does not send it), or waiting for a new window (held).
NOT_STARTED = ("pending", "claimed", "held")


async def cancel_step(session: AsyncSession, env: Envelope[DunningStepCancelled], now: datetime) -> None:
    d = orm.deliveries.c
    await session.execute(
        update(orm.deliveries)
        .where(d.tenant_id == env.tenant_id, d.step_id == env.data.step_id, d.status.in_(NOT_STARTED))
        .values(status="cancelled", error=f"step cancelled: {env.data.reason}", claimed_until=None, updated_at=now)
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


async def replan_step(session: AsyncSession, env: Envelope[DunningStepReplanned]) -> None:
    d = env.data
    window = d.model_dump(mode="json", include={"deliver_from", "deliver_until"})  # as dunning.step.due has them
    await session.execute(
        _REPLAN,
        {
            "tenant_id": env.tenant_id,
            "step_id": d.step_id,
            "deliver_from": d.deliver_from,
            "from_json": window["deliver_from"],
            "until_json": window["deliver_until"],
        },
    )


def make_step_recorder(clock: Clock, group: str):  # type: ignore[no-untyped-def]
    async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        rows: list[dict[str, Any]] = []
        now = clock.now()
        for ev in events:
            with ev.traced(group):
                if ev.type == "dunning.step.due":
                    rows.extend(delivery_rows(ev.envelope, now))  # type: ignore[arg-type]
                elif ev.type == "dunning.step.cancelled":
                    await insert_deliveries(session, rows)  # keep order: a due then cancelled step ends cancelled
                    rows = []
                    await cancel_step(session, ev.envelope, now)  # type: ignore[arg-type]
                elif ev.type == "dunning.step.replanned":
                    await insert_deliveries(session, rows)  # keep order, as for a cancel
                    rows = []
                    await replan_step(session, ev.envelope)  # type: ignore[arg-type]
        for i in range(0, len(rows), 1000):
            await insert_deliveries(session, rows[i : i + 1000])

    return apply
