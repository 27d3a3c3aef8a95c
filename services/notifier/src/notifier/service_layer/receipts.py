"""Receipts and opt-outs: what a provider's callback or a customer's reply changes.

Every callback is applied once (receipts table keyed by the provider's event id), moves the delivery
forward only (a late `sent` never undoes `delivered`), emits notification.delivered|bounced, and turns hard
bounces, complaints, unsubscribes and STOP replies into suppressions plus consent.revoked.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope
from dunning_events.events import NotificationBounced, NotificationDelivered
from dunning_events.outbox import OutboxWriter
from notifier.adapters import orm
from notifier.domain.recipients import mask, suppression_key
from notifier.service_layer.outcomes import add_suppression, invoice_ids, notification_event

Receipt = Literal["progress", "delivered", "soft_bounce", "hard_bounce", "complaint", "unsubscribe"]


async def claim_receipt(
    session: AsyncSession,
    provider: str,
    event_id: str,
    delivery_id: Any,
    status: str,
    now: datetime,
    payload: Mapping[str, Any],
) -> bool:
    """True the first time this provider event is seen."""
    row = (
        await session.execute(
            insert(orm.receipts)
            .values(
                provider=provider,
                provider_event_id=event_id[:300],
                delivery_id=delivery_id,
                status=status,
                received_at=now,
                payload=dict(payload),
            )
            .on_conflict_do_nothing()
            .returning(orm.receipts.c.provider_event_id)
        )
    ).first()
    return row is not None


async def delivery_by_provider_id(session: AsyncSession, provider_message_id: str) -> Mapping[str, Any] | None:
    d = orm.deliveries.c
    return (
        (await session.execute(select(orm.deliveries).where(d.provider_message_id == provider_message_id)))
        .mappings()
        .first()
    )


async def delivery_by_id(session: AsyncSession, delivery_id: Any) -> Mapping[str, Any] | None:
    d = orm.deliveries.c
    return (await session.execute(select(orm.deliveries).where(d.id == delivery_id))).mappings().first()


async def apply_receipt(
    session: AsyncSession,
    outbox: OutboxWriter,
    delivery: Mapping[str, Any],
    kind: Receipt,
    reason: str | None,
    now: datetime,
) -> None:
    d = orm.deliveries.c
    common = {
        "customer_id": delivery["customer_id"],
        "delivery_id": str(delivery["id"]),
        "step_id": delivery["step_id"],
        "channel": delivery["channel"],
        "recipient": mask(delivery["recipient"]),
        "invoice_ids": invoice_ids(delivery),
        "provider": delivery["provider"],
        "provider_message_id": delivery["provider_message_id"],
        "reason": reason,
    }
    events: list[Envelope[Any]] = []
    tenant, corr = delivery["tenant_id"], delivery.get("correlation_id")
    if kind == "delivered":
        moved = (
            await session.execute(
                update(orm.deliveries)
                .where(d.id == delivery["id"], d.status.in_(("sent", "unknown")))
                .values(status="delivered", updated_at=now)
                .returning(d.id)
            )
        ).first()
        if moved:
            events.append(notification_event(NotificationDelivered(**common), tenant, now, corr))
    elif kind in ("soft_bounce", "hard_bounce"):
        moved = (
            await session.execute(
                update(orm.deliveries)
                .where(d.id == delivery["id"], d.status.in_(("sent", "delivered", "unknown")))
                .values(status="bounced", error=reason, updated_at=now)
                .returning(d.id)
            )
        ).first()
        if moved:
            events.append(
                notification_event(NotificationBounced(**common, hard=kind == "hard_bounce"), tenant, now, corr)
            )
    suppression_reason = {"hard_bounce": "hard_bounce", "complaint": "complaint", "unsubscribe": "unsubscribe"}.get(
        kind
    )
    address_kind = suppression_key(delivery["channel"])
    if suppression_reason and address_kind and delivery["recipient"]:
        events += await add_suppression(
            session,
            tenant,
            address_kind,
            delivery["recipient"],
            suppression_reason,
            delivery["customer_id"],
            delivery["channel"],
            reason,
            now,
        )
    await outbox.add(session, events)


async def customers_reached_at(session: AsyncSession, kind: str, address: str) -> list[tuple[str, str]]:
    """(tenant, customer) pairs we have messaged at this address or number: who a STOP reply is about."""
    d = orm.deliveries.c
    channels = ("sms", "voice") if kind == "phone" else ("email",)
    rows = await session.execute(
        select(d.tenant_id, d.customer_id).where(d.recipient == address, d.channel.in_(channels)).distinct()
    )
    return [(t, c) for t, c in rows.all()]
