"""What the notifier does with dunning.steps.v1: one delivery record per (tenant, customer, step, channel),
written before anything is sent; a cancelled step cancels its deliveries that have not started; a replanned
step (a new contact window for deliveries held outside the old one) makes its held deliveries due again."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.consumer import ConsumedEvent
from dunning_events.envelope import Envelope
from dunning_events.events import DunningStepCancelled, DunningStepDue, DunningStepReplanned
from dunning_events.tracing import current_trace_headers
from dunning_kit.clock import Clock
from notifier.adapters import delivery_records
from notifier.adapters.delivery_records import insert_deliveries


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
