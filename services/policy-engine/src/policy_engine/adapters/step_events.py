"""dunning.step.due (and dunning.step.held) on the hot path: its outbox row built from plain values by the events library's fast encoder
(dunning_events.fast_encoder: the model's field order, byte for byte what pydantic writes for the data; its test
holds the two together) and COPY'd into the outbox — pydantic costs more than the decision itself at 10,000
decisions a second."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson

from dunning_events.events import ChannelHold, DunningStepDue, DunningStepHeld, Fee, NextStep, StepInvoice
from dunning_events.fast_encoder import OUTBOX_COLUMNS, FastEncoder, ordered
from dunning_events.money import Money
from dunning_events.topics import partition_key

__all__ = ["OUTBOX_COLUMNS", "FeeRow", "HoldRow", "OutboxRow", "StepInvoiceRow", "step_due_row", "step_held_row"]

_STEP_DUE = FastEncoder(DunningStepDue, source="policy-engine")
_STEP_HELD = FastEncoder(DunningStepHeld, source="policy-engine")


def _instant(at: datetime) -> str:
    # Equal instants in other zones compare equal, so only UTC ones (all the engine computes) are cached.
    return _instant_utc(at) if at.tzinfo is UTC else _format(at)


@lru_cache(maxsize=4096)  # a batch's messages share a handful of instants (now, the planned moments)
def _instant_utc(at: datetime) -> str:
    return _format(at)


def _format(at: datetime) -> str:
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text  # pydantic writes UTC as Z


@dataclass(slots=True)
class StepInvoiceRow:
    invoice_id: str
    number: str
    total: Decimal
    balance: Decimal
    due_date: date | None
    days_overdue: int


@dataclass(slots=True)
class FeeRow:
    kind: str
    description: str
    amount: Decimal
    currency: str


@dataclass(slots=True)
class HoldRow:
    channel: str
    rule: str  # contact_cap | consent | other, as the rule that refused the channel said
    reason: str


@dataclass(slots=True)
class OutboxRow:
    event_id: uuid.UUID
    key: str
    payload: bytes
    headers: dict[str, str]
    occurred_at: str
    tenant_id: str
    subject: str
    encoder: FastEncoder = _STEP_DUE

    def record(self) -> tuple[Any, ...]:
        """The row as OUTBOX_COLUMNS lists them (a decision starts its own flow: correlated with itself)."""
        headers = orjson.dumps(self.headers).decode() if self.headers else "{}"
        e = self.encoder
        return (
            self.event_id, e.event_type, e.topic, self.key, self.payload, headers,
            e.source, self.occurred_at, self.subject, e.schema_version, self.tenant_id,
            self.event_id, None,
        )  # fmt: skip


def step_due_row(
    *,
    tenant_id: str,
    customer_id: str,
    step_id: str,
    policy_id: str,
    policy_version: int,
    step_index: int,
    step_name: str,
    tone: str,
    template_id: str,
    channels: list[str],
    channel_mode: str,
    currency: str,
    amount_due: Decimal,
    invoices: list[StepInvoiceRow],
    fees: list[FeeRow],
    actions: list[str],
    scheduled_for: datetime,
    late: bool,
    deliver_until: datetime | None,
    occurred_at: datetime,
    deliver_from: datetime | None = None,
    next_step: tuple[str, datetime] | None = None,
    headers: dict[str, str] | None = None,
) -> OutboxRow:
    event_id = uuid.uuid4()
    payload = _STEP_DUE.value(
        {
            "customer_id": customer_id,
            "step_id": step_id,
            "policy_id": policy_id,
            "policy_version": policy_version,
            "step_index": step_index,
            "step_name": step_name,
            "tone": tone,
            "template_id": template_id,
            "channels": channels,
            "channel_mode": channel_mode,
            "currency": currency,
            "amount_due": str(amount_due),
            "invoices": [
                ordered(
                    StepInvoice,
                    {
                        "invoice_id": i.invoice_id,
                        "number": i.number,
                        "total": str(i.total),
                        "balance": str(i.balance),
                        "due_date": i.due_date.isoformat() if i.due_date else None,
                        "days_overdue": i.days_overdue,
                    },
                )
                for i in invoices
            ],
            "fees": [
                ordered(
                    Fee,
                    {
                        "kind": f.kind,
                        "description": f.description,
                        "amount": ordered(Money, {"amount": str(f.amount), "currency": f.currency}),
                    },
                )
                for f in fees
            ],
            "actions": actions,
            "scheduled_for": _instant(scheduled_for),
            "late": late,
            "deliver_until": _instant(deliver_until) if deliver_until else None,
            "deliver_from": _instant(deliver_from) if deliver_from else None,
            "next_step": ordered(NextStep, {"step_name": next_step[0], "at": _instant(next_step[1])})
            if next_step is not None
            else None,
        }
    )
    return OutboxRow(
        event_id,
        partition_key(tenant_id, customer_id),
        payload,
        headers or {},
        _instant(occurred_at),
        tenant_id,
        step_id,
    )


def step_held_row(
    *,
    tenant_id: str,
    customer_id: str,
    step_name: str,
    policy_id: str,
    invoice_ids: list[str],
    held: list[HoldRow],
    sent: bool,
    moved_to: datetime | None,
    occurred_at: datetime,
) -> OutboxRow:
    """dunning.step.held: the channels a decision held back (its subject is the customer: a held step has no
    step id unless it was sent on the others)."""
    payload = _STEP_HELD.value(
        {
            "customer_id": customer_id,
            "step_name": step_name,
            "policy_id": policy_id,
            "invoice_ids": invoice_ids,
            "held": [ordered(ChannelHold, {"channel": h.channel, "rule": h.rule, "reason": h.reason}) for h in held],
            "sent": sent,
            "moved_to": _instant(moved_to) if moved_to is not None else None,
        }
    )
    return OutboxRow(
        uuid.uuid4(), partition_key(tenant_id, customer_id), payload, {}, _instant(occurred_at), tenant_id,
        customer_id, _STEP_HELD,
    )  # fmt: skip
