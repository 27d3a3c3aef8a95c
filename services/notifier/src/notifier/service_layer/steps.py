"""What the notifier does with dunning.steps.v1: one delivery record per (tenant, customer, step, channel),
written before anything is sent; a cancelled step cancels its deliveries that have not started; a replanned
step (a new contact window for deliveries held outside the old one) makes its held deliveries due again.
STEP_HANDLERS (at the end) is the index."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope
from dunning_events.events import DunningStepCancelled, DunningStepDue, DunningStepReplanned
from dunning_events.handler_table import HandlerTable, on, on_run
from dunning_events.tracing import current_trace_headers
from notifier.adapters import orm


def idempotency_key(tenant_id: str, customer_id: str, step_id: str, channel: str) -> str:
    return f"{tenant_id}:{customer_id}:{step_id}:{channel}"


def delivery_rows(
    env: Envelope[DunningStepDue], now: datetime, trace_context: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """`all`: a record per channel. `fallback`: only the first; the next is created if it fails.
    `trace_context`: the step event's, noted in its consumer span (by default: the current span's)."""
    d = env.data
    step = d.model_dump(mode="json")
    channels = list(dict.fromkeys(d.channels))
    if trace_context is None:
        trace_context = current_trace_headers()
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
_INSERT_DELIVERIES = text(
    """
    INSERT INTO deliveries (id, tenant_id, customer_id, step_id, channel, idempotency_key, step, channel_mode,
                            fallback_channels, next_attempt_at, correlation_id, trace_context)
    SELECT u.id, u.tenant_id, u.customer_id, u.step_id, u.channel, u.idempotency_key, u.step::jsonb, u.channel_mode,
           u.fallback_channels::jsonb, u.next_attempt_at, u.correlation_id, u.trace_context::jsonb
    FROM unnest(CAST(:id AS uuid[]), CAST(:tenant_id AS text[]), CAST(:customer_id AS text[]),
                CAST(:step_id AS text[]), CAST(:channel AS text[]), CAST(:idempotency_key AS text[]),
                CAST(:step AS text[]), CAST(:channel_mode AS text[]), CAST(:fallback_channels AS text[]),
                CAST(:next_attempt_at AS timestamptz[]), CAST(:correlation_id AS uuid[]),
                CAST(:trace_context AS text[]))
         AS u(id, tenant_id, customer_id, step_id, channel, idempotency_key, step, channel_mode, fallback_channels,
              next_attempt_at, correlation_id, trace_context)
    ON CONFLICT (idempotency_key) DO NOTHING
    """
)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        # The unique key makes a redelivered step (or a second fallback attempt) a no-op.
        await session.execute(
            _INSERT_DELIVERIES,
            {
                "id": [r["id"] for r in rows],
                "tenant_id": [r["tenant_id"] for r in rows],
                "customer_id": [r["customer_id"] for r in rows],
                "step_id": [r["step_id"] for r in rows],
                "channel": [r["channel"] for r in rows],
                "idempotency_key": [r["idempotency_key"] for r in rows],
                "step": [_json(r["step"]) for r in rows],
                "channel_mode": [r.get("channel_mode") or "all" for r in rows],
                "fallback_channels": [_json(r.get("fallback_channels") or []) for r in rows],
                "next_attempt_at": [r["next_attempt_at"] for r in rows],
                "correlation_id": [r.get("correlation_id") for r in rows],
                "trace_context": [_json(r.get("trace_context") or {}) for r in rows],
            },
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


@dataclass
class StepBatch:
    """What one batch of dunning.steps.v1 works on: its session, one clock reading, and the trace each due step
    goes on from (noted in the step event's own consumer span, see note_trace)."""

    session: AsyncSession
    now: datetime
    traces: dict[uuid.UUID, dict[str, str]] = field(default_factory=dict)


def note_trace(batch: StepBatch, env: Envelope[Any]) -> None:
    batch.traces[env.id] = current_trace_headers()


async def record_due_steps(batch: StepBatch, envs: list[Envelope[DunningStepDue]]) -> None:
    """A run of due steps: their delivery records, one statement per thousand rows."""
    rows = [row for env in envs for row in delivery_rows(env, batch.now, batch.traces.get(env.id))]
    for i in range(0, len(rows), 1000):
        await insert_deliveries(batch.session, rows[i : i + 1000])


async def on_step_cancelled(batch: StepBatch, env: Envelope[DunningStepCancelled]) -> None:
    await cancel_step(batch.session, env, batch.now)


async def on_step_replanned(batch: StepBatch, env: Envelope[DunningStepReplanned]) -> None:
    await replan_step(batch.session, env)


# The index of what the notifier does with dunning.steps.v1. Due steps arrive in runs (a timer batch of the
# policy engine) and are recorded set-wise; a cancel or a replan ends the run before it, so a step due then
# cancelled in one batch ends cancelled.
STEP_HANDLERS: HandlerTable[StepBatch] = HandlerTable(
    on_run(DunningStepDue, record_due_steps),
    on(DunningStepCancelled, on_step_cancelled),
    on(DunningStepReplanned, on_step_replanned),
)
