"""Request and response bodies of a one-off reminder (POST /v1/customers/{customer_id}/reminders)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ReminderChannel = Literal["email", "sms", "letter"]


class ReminderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invoice_ids: list[str] | None = Field(
        None, max_length=500,
        description="The invoices the reminder is about; left out: every open invoice of the customer that is not "
        "paused (a dispute, a promise, a plan, a block)",
    )  # fmt: skip
    channel: ReminderChannel | None = Field(
        None, description="Left out: the first email, sms or letter channel of the case's current step"
    )
    template: str | None = Field(
        None, min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9_\-]*$",
        description="The notifier template to render; left out: the current step's",
    )  # fmt: skip


class ReminderOut(BaseModel):
    step_id: str = Field(description="The dunning.step.due the notifier delivers (its idempotency key)")
    customer_id: str
    channel: ReminderChannel
    template_id: str
    invoice_ids: list[str]
    sent_at: str = Field(description="When the engine handed it to the notifier")
    sent_by: str | None = Field(description="The person who asked for it, when the request named one")
