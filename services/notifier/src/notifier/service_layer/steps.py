"""What the notifier does with dunning.steps.v1: one delivery record per (tenant, customer, step, channel),
written before anything is sent; a cancelled step cancels its deliveries that have not started; a replanned
step (a new contact window for deliveries held outside the old one) makes its held deliveries due again.
STEP_HANDLERS (at the end) is the index."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope
from dunning_events.events import DunningStepCancelled, DunningStepDue, DunningStepReplanned
from dunning_events.handler_table import HandlerTable, on, on_run
from dunning_events.tracing import current_trace_headers
from notifier.adapters import delivery_records
from notifier.adapters.delivery_records import insert_deliveries


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


# Not yet handed to a provider: waiting (pending), rendered in a dispatcher's hands (claimed; its send gate
# then finds the row no longer claimed and does not send it), or waiting for a new window (held).
NOT_STARTED = ("pending", "claimed", "held")


async def cancel_step(session: AsyncSession, env: Envelope[DunningStepCancelled], now: datetime) -> None:
    reason = f"step cancelled: {env.data.reason}"
    await delivery_records.cancel_step_deliveries(session, env.tenant_id, env.data.step_id, NOT_STARTED, reason, now)


async def replan_step(session: AsyncSession, env: Envelope[DunningStepReplanned]) -> None:
    """The step's held deliveries get the new window and are due at its start (delivery_records.release_held)."""
    d = env.data
    window = d.model_dump(mode="json", include={"deliver_from", "deliver_until"})  # as dunning.step.due has them
    await delivery_records.release_held(session, env.tenant_id, d.step_id, d.deliver_from, window)


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
