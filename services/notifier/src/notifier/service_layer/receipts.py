"""Receipts: what a provider's callback changes.

Every callback is applied once (receipts table keyed by the provider's event id), moves the delivery
forward only (a late `sent` never undoes `delivered`), emits notification.delivered|bounced, and turns hard
bounces, complaints and unsubscribes into suppressions plus consent.revoked (suppressions.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope
from dunning_events.events import NotificationBounced, NotificationDelivered
from dunning_events.outbox import OutboxWriter
from notifier.adapters import delivery_records
from notifier.adapters.receipts import claim_receipt
from notifier.domain.recipients import suppression_key
from notifier.service_layer.notification_events import outcome_event
from notifier.service_layer.suppressions import add_suppression

# The callbacks' reads, named here so routers call the service layer.
__all__ = ["Receipt", "apply_receipt", "claim_receipt", "delivery_by_id", "delivery_by_provider_id"]

Receipt = Literal["progress", "delivered", "soft_bounce", "hard_bounce", "complaint", "unsubscribe"]

delivery_by_id = delivery_records.delivery_by_id
delivery_by_provider_id = delivery_records.delivery_by_provider_id


async def apply_receipt(
    session: AsyncSession,
    outbox: OutboxWriter,
    delivery: Mapping[str, Any],
    kind: Receipt,
    reason: str | None,
    now: datetime,
) -> None:
    reported = {
        "provider": delivery["provider"],
        "provider_message_id": delivery["provider_message_id"],
        "reason": reason,
    }
    events: list[Envelope[Any]] = []
    tenant, recipient = delivery["tenant_id"], delivery["recipient"]
    if kind == "delivered":
        if await delivery_records.mark_delivered(session, delivery["id"], now):
            events.append(outcome_event(NotificationDelivered, delivery, recipient, now, **reported))
    elif kind in ("soft_bounce", "hard_bounce") and await delivery_records.mark_bounced(
        session, delivery["id"], reason, now
    ):
        events.append(
            outcome_event(NotificationBounced, delivery, recipient, now, **reported, hard=kind == "hard_bounce")
        )
    suppression_reason = {"hard_bounce": "hard_bounce", "complaint": "complaint", "unsubscribe": "unsubscribe"}.get(
        kind
    )
    address_kind = suppression_key(delivery["channel"])
    if suppression_reason and address_kind and recipient:
        events += await add_suppression(
            session,
            tenant,
            address_kind,
            recipient,
            suppression_reason,
            delivery["customer_id"],
            delivery["channel"],
            reason,
            now,
        )
    await outbox.add(session, events)
