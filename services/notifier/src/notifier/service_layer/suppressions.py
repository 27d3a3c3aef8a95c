"""Suppressions and consent: an address or number that must not be contacted again (hard bounce, complaint,
unsubscribe, STOP reply, a staff member's entry) goes on the tenant's suppression list, and the customer it
belonged to gets consent.revoked for the policy engine - once, when the entry is new. The dispatcher asks the
list before every decision; a STOP reply asks which customers were messaged at the number."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope
from dunning_events.events import ConsentRevoked
from notifier.adapters import suppressions
from notifier.adapters.delivery_records import customers_messaged_at
from notifier.domain.erasure import address_digest
from notifier.domain.recipients import mask, suppression_key
from notifier.service_layer.compose import Recipient
from notifier.service_layer.notification_events import notifier_event


async def add_suppression(
    session: AsyncSession,
    tenant_id: str,
    kind: str,
    address: str,
    reason: str,
    customer_id: str | None,
    channel: str,
    detail: str | None,
    now: datetime,
) -> list[Envelope[Any]]:
    """Suppress an address or number; a new suppression also yields consent.revoked for the policy engine."""
    entry = suppressions.Suppression(tenant_id, kind, address, reason, customer_id, detail)
    added = await suppressions.insert_suppression(session, entry, now)
    if not added or customer_id is None:
        return []
    channels = [channel] if kind == "email" else ["sms", "voice"]  # a STOP on a number stops calls too
    return [
        notifier_event(
            ConsentRevoked(customer_id=customer_id, channel=ch, address=mask(address), reason=reason),
            tenant_id,
            now,
            None,
        )
        for ch in channels
    ]


async def suppressed(
    session: AsyncSession, deliveries: Sequence[Mapping[str, Any]], recipients: Mapping[Any, Recipient]
) -> dict[tuple[str, str, str], str]:
    """(tenant, kind, address) -> reason, for the batch's recipients that are on the suppression list."""
    keys = set()
    for row in deliveries:
        kind = suppression_key(row["channel"])
        address = recipients[row["id"]].address
        if kind and address:
            keys.add((row["tenant_id"], kind, address))
    if not keys:
        return {}
    # An erased customer's suppressed addresses are kept as digests: look for both forms.
    digests = {(t, k, address_digest(t, k, a)): (t, k, a) for t, k, a in keys}
    found = await suppressions.suppression_reasons(session, keys | set(digests))
    return {digests.get(key, key): reason for key, reason in found.items()}


async def customers_reached_at(session: AsyncSession, kind: str, address: str) -> list[tuple[str, str]]:
    """(tenant, customer) pairs we have messaged at this address or number: who a STOP reply is about."""
    channels = ("sms", "voice") if kind == "phone" else ("email",)
    return await customers_messaged_at(session, channels, address)
