"""The hot path writes dunning.step.due through the fast encoder (whose bytes libs/events/tests/test_fast_encoder.py
checks for every event type): the values it hands over must make exactly the contract's event."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from dunning_events.codec import encode_data
from dunning_events.envelope import Envelope
from dunning_events.events import ChannelHold, DunningStepDue, DunningStepHeld, Fee, NextStep, StepInvoice
from dunning_events.fast_encoder import OUTBOX_COLUMNS
from dunning_events.money import Money
from dunning_events.outbox import event_of_row
from policy_engine.adapters.step_events import FeeRow, HoldRow, StepInvoiceRow, step_due_row, step_held_row


def test_the_fast_encoding_is_the_document_pydantic_writes_and_decodes_to_the_same_event() -> None:
    at = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
    row = step_due_row(
        tenant_id="acme", customer_id="C-1", step_id="s-1", policy_id="default", policy_version=3, step_index=5,
        step_name="firm_reminder_1", tone="firm", template_id="firm", channels=["email", "letter"],
        channel_mode="fallback", currency="EUR", amount_due=Decimal("1250.50"),
        invoices=[StepInvoiceRow("I-1", "N-1", Decimal("2000.00"), Decimal("1250.50"), date(2026, 2, 1), 38),
                  StepInvoiceRow("I-2", "N-ü", Decimal("0.00"), Decimal("0.00"), None, 0)],
        fees=[FeeRow("statutory_interest", "Zinsen auf N-1 für 38 Tage", Decimal("13.21"), "EUR")],
        actions=["credit_hold"], scheduled_for=at, late=True, deliver_until=datetime(2026, 3, 11, 20, tzinfo=UTC),
        occurred_at=at, deliver_from=datetime(2026, 3, 11, 7, tzinfo=UTC),
        next_step=("firm_reminder_2", datetime(2026, 3, 26, 8, 0, 0, 500_000, tzinfo=UTC)),
    )  # fmt: skip
    data = DunningStepDue(
        customer_id="C-1", step_id="s-1", policy_id="default", policy_version=3, step_index=5,
        step_name="firm_reminder_1", tone="firm", template_id="firm", channels=["email", "letter"],
        channel_mode="fallback", currency="EUR", amount_due=Decimal("1250.50"),
        invoices=[StepInvoice(invoice_id="I-1", number="N-1", total=Decimal("2000.00"), balance=Decimal("1250.50"),
                              due_date=date(2026, 2, 1), days_overdue=38),
                  StepInvoice(invoice_id="I-2", number="N-ü", total=Decimal("0.00"), balance=Decimal("0.00"),
                              due_date=None, days_overdue=0)],
        fees=[Fee(kind="statutory_interest", description="Zinsen auf N-1 für 38 Tage",
                  amount=Money(amount=Decimal("13.21"), currency="EUR"))],
        actions=["credit_hold"], scheduled_for=at, late=True, deliver_until=datetime(2026, 3, 11, 20, tzinfo=UTC),
        deliver_from=datetime(2026, 3, 11, 7, tzinfo=UTC),
        next_step=NextStep(step_name="firm_reminder_2", at=datetime(2026, 3, 26, 8, 0, 0, 500_000, tzinfo=UTC)),
    )  # fmt: skip
    reference = Envelope[DunningStepDue](
        id=row.event_id, type="dunning.step.due", schema_version=1, source="policy-engine", occurred_at=at,
        tenant_id="acme", subject="s-1", correlation_id=row.event_id, causation_id=None, data=data,
    )  # fmt: skip
    assert json.loads(row.payload) == json.loads(reference.data.model_dump_json())
    assert row.payload == encode_data(reference), "byte for byte, next_step included"
    assert event_of_row(dict(zip(OUTBOX_COLUMNS, row.record(), strict=True))) == reference
    assert row.key == "acme:C-1"
    assert isinstance(row.event_id, uuid.UUID)


def test_the_held_event_is_the_document_pydantic_writes_and_decodes_to_the_same_event() -> None:
    at = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
    moved_to = datetime(2026, 3, 14, 8, 0, 0, 250_000, tzinfo=UTC)
    row = step_held_row(
        tenant_id="acme", customer_id="C-1", step_name="sms_escalation", policy_id="default",
        invoice_ids=["I-1", "I-2"], held=[HoldRow("sms", "contact_cap", "sms: contact cap reached (ü)")],
        sent=False, moved_to=moved_to, occurred_at=at,
    )  # fmt: skip
    data = DunningStepHeld(
        customer_id="C-1", step_name="sms_escalation", policy_id="default", invoice_ids=["I-1", "I-2"],
        held=[ChannelHold(channel="sms", rule="contact_cap", reason="sms: contact cap reached (ü)")], sent=False,
        moved_to=moved_to,
    )  # fmt: skip
    reference = Envelope[DunningStepHeld](
        id=row.event_id, type="dunning.step.held", schema_version=1, source="policy-engine", occurred_at=at,
        tenant_id="acme", subject="C-1", correlation_id=row.event_id, causation_id=None, data=data,
    )  # fmt: skip
    assert row.payload == encode_data(reference)
    assert event_of_row(dict(zip(OUTBOX_COLUMNS, row.record(), strict=True))) == reference
