"""The one place a delivery's notification event is built: notification.sent, .failed, .skipped, .held,
.delivered and .bounced all describe a delivery record the same way (customer, delivery, step, channel, the
recipient masked, the step's invoices) and travel with the step event's correlation id; consent.revoked is
wrapped the same way. Every outcome path (the dispatcher's decisions, the recorded provider calls, the stuck
sweep, receipts) calls this module, so an event's shape cannot drift between them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    NotificationFailed,
    NotificationHeld,
    NotificationOutcome,
    NotificationSent,
    NotificationSkipped,
)
from notifier.domain.contact_window import OutsideWindow
from notifier.domain.recipients import mask

SOURCE = "notifier"

Outcome = TypeVar("Outcome", bound=NotificationOutcome)


def invoice_ids(delivery: Mapping[str, Any]) -> list[str]:
    """The step's invoices, as the delivery record stores the step."""
    return [inv["invoice_id"] for inv in delivery["step"]["invoices"]]


def notifier_event(data: EventData, tenant_id: str, now: datetime, correlation_id: Any) -> Envelope[Any]:
    """Any event of the notifier, in its envelope."""
    return new_event(data, tenant_id=tenant_id, source=SOURCE, occurred_at=now, correlation_id=correlation_id)


def outcome_data(kind: type[Outcome], delivery: Mapping[str, Any], recipient: str | None, **fields: Any) -> Outcome:
    """`kind` (NotificationSent, NotificationFailed, ...) about this delivery record; `recipient` in clear
    (masked here), `fields` the event's own (provider, reason, permanent, ...)."""
    data: Outcome = kind(
        customer_id=delivery["customer_id"],
        delivery_id=str(delivery["id"]),
        step_id=delivery["step_id"],
        channel=delivery["channel"],
        recipient=mask(recipient),
        invoice_ids=invoice_ids(delivery),
        **fields,
    )
    return data


def outcome_event(
    kind: type[NotificationOutcome], delivery: Mapping[str, Any], recipient: str | None, now: datetime, **fields: Any
) -> Envelope[Any]:
    """outcome_data in its envelope: the delivery's tenant, the step event's correlation id."""
    return notifier_event(
        outcome_data(kind, delivery, recipient, **fields),
        delivery["tenant_id"],
        now,
        delivery.get("correlation_id"),
    )


# The outcomes the dispatcher and its recorder report, with their own fields named (and type-checked).


def sent_event(
    delivery: Mapping[str, Any],
    recipient: str | None,
    now: datetime,
    *,
    provider: str,
    provider_message_id: str | None,
) -> Envelope[Any]:
    return outcome_event(
        NotificationSent, delivery, recipient, now, provider=provider, provider_message_id=provider_message_id
    )


def failed_event(
    delivery: Mapping[str, Any],
    recipient: str | None,
    now: datetime,
    *,
    reason: str,
    permanent: bool,
    provider: str | None = None,
    outcome_unknown: bool = False,
) -> Envelope[Any]:
    """`outcome_unknown`: the provider may have taken it (not retried, counted as a contact attempt)."""
    return outcome_event(
        NotificationFailed,
        delivery,
        recipient,
        now,
        provider=provider,
        reason=reason,
        permanent=permanent,
        outcome_unknown=outcome_unknown,
    )


def skipped_event(delivery: Mapping[str, Any], recipient: str | None, now: datetime, *, reason: str) -> Envelope[Any]:
    return outcome_event(NotificationSkipped, delivery, recipient, now, reason=reason)


def held_event(
    delivery: Mapping[str, Any], recipient: str | None, now: datetime, *, outside: OutsideWindow
) -> Envelope[Any]:
    """Reached outside the step's contact window: the reason in local time, the window it missed."""
    return outcome_event(
        NotificationHeld,
        delivery,
        recipient,
        now,
        reason=outside.reason,
        held_at=now,
        deliver_from=outside.deliver_from,
        deliver_until=outside.deliver_until,
    )
