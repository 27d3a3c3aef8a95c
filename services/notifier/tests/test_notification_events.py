"""The one builder of a delivery's notification events: every outcome describes its delivery record the same
way (masked recipient, the step's invoices, the step event's correlation id), whichever path reports it."""

from __future__ import annotations

import ast
import uuid
from datetime import UTC, datetime
from pathlib import Path

from dunning_events.events import (
    NotificationBounced,
    NotificationDelivered,
    NotificationFailed,
    NotificationHeld,
    NotificationSent,
    NotificationSkipped,
)
from notifier.domain.contact_window import OutsideWindow
from notifier.service_layer import notification_events
from notifier.service_layer.notification_events import (
    failed_event,
    held_event,
    outcome_event,
    sent_event,
    skipped_event,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CORRELATION = uuid.uuid4()
DELIVERY = {
    "id": uuid.UUID("00000000-0000-0000-0000-0000000000d1"),
    "tenant_id": "acme",
    "customer_id": "C-1",
    "step_id": "S-1",
    "channel": "email",
    "step": {"invoices": [{"invoice_id": "INV-1"}, {"invoice_id": "INV-2"}]},
    "correlation_id": CORRELATION,
}
WINDOW = OutsideWindow(
    reason="outside 08:00-20:00 Europe/Berlin",
    deliver_from=datetime(2026, 3, 3, 7, tzinfo=UTC),
    deliver_until=datetime(2026, 3, 3, 19, tzinfo=UTC),
)


def test_every_delivery_outcome_describes_its_delivery_the_same_way_and_travels_with_the_steps_correlation() -> None:
    envs = [
        sent_event(DELIVERY, "ann@initech.example", NOW, provider="smtp", provider_message_id="m-1"),
        failed_event(DELIVERY, "ann@initech.example", NOW, reason="mailbox full", permanent=True),
        skipped_event(DELIVERY, "ann@initech.example", NOW, reason="all invoices settled"),
        held_event(DELIVERY, "ann@initech.example", NOW, outside=WINDOW),
        outcome_event(NotificationDelivered, DELIVERY, "ann@initech.example", NOW, provider="smtp"),
    ]
    assert [type(e.data) for e in envs] == [
        NotificationSent,
        NotificationFailed,
        NotificationSkipped,
        NotificationHeld,
        NotificationDelivered,
    ]
    for env in envs:
        assert (env.tenant_id, env.source, env.occurred_at, env.correlation_id) == (
            "acme",
            "notifier",
            NOW,
            CORRELATION,
        )
        assert env.subject == str(DELIVERY["id"])
        assert env.data.model_dump(include={"customer_id", "delivery_id", "step_id", "channel", "recipient", "invoice_ids"}) == {
            "customer_id": "C-1",
            "delivery_id": str(DELIVERY["id"]),
            "step_id": "S-1",
            "channel": "email",
            "recipient": "a***@initech.example",
            "invoice_ids": ["INV-1", "INV-2"],
        }  # fmt: skip


def test_each_outcome_carries_its_own_fields() -> None:
    sent = sent_event(DELIVERY, "+4915112345678", NOW, provider="twilio_sms", provider_message_id="SM1").data
    assert (sent.provider, sent.provider_message_id, sent.recipient) == ("twilio_sms", "SM1", "+49********678")
    unknown = failed_event(
        DELIVERY, None, NOW, reason="timeout", permanent=True, provider="smtp", outcome_unknown=True
    ).data
    assert isinstance(unknown, NotificationFailed)
    assert (unknown.reason, unknown.permanent, unknown.outcome_unknown, unknown.provider, unknown.recipient) == (
        "timeout", True, True, "smtp", None,
    )  # fmt: skip
    decided = failed_event(DELIVERY, "ann@initech.example", NOW, reason="unknown template 'x'", permanent=True).data
    assert isinstance(decided, NotificationFailed)
    assert (decided.provider, decided.outcome_unknown) == (None, False)
    held = held_event(DELIVERY, "ann@initech.example", NOW, outside=WINDOW).data
    assert isinstance(held, NotificationHeld)
    assert (held.reason, held.held_at, held.deliver_from, held.deliver_until) == (
        WINDOW.reason, NOW, WINDOW.deliver_from, WINDOW.deliver_until,
    )  # fmt: skip
    bounced = outcome_event(NotificationBounced, DELIVERY, "ann@initech.example", NOW, hard=False, reason="4.2.2").data
    assert isinstance(bounced, NotificationBounced)
    assert (bounced.hard, bounced.reason) == (False, "4.2.2")


def test_no_module_but_the_builder_constructs_a_delivery_event() -> None:
    """The dispatcher, the recorder, the stuck sweep and the receipts all go through the builder, so a field
    added to the events is filled the same way on every path."""
    src = Path(notification_events.__file__).parents[1]
    kinds = {
        "NotificationSent",
        "NotificationFailed",
        "NotificationSkipped",
        "NotificationHeld",
        "NotificationDelivered",
        "NotificationBounced",
    }
    built_elsewhere = [
        f"{path.relative_to(src)}:{node.lineno}"
        for path in sorted(src.rglob("*.py"))
        if path != Path(notification_events.__file__)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in kinds
    ]
    assert built_elsewhere == []
