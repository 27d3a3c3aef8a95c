"""Request and response bodies of the call log (POST /v1/customers/{customer_id}/calls)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from policy_engine.domain.conversations import CallOutcome


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: CallOutcome = Field(
        description="conversation: the debtor was reached and talked (no call about these debts for 7 days, "
        "12 CFR 1006.14(b)(2)(ii)); no_answer, voicemail, wrong_number, refused_to_talk: an attempt"
    )
    invoice_ids: list[str] | None = Field(
        None, max_length=500, description="The debts talked about; left out: every open invoice of the customer"
    )
    at: AwareDatetime | None = Field(None, description="When the call took place (not in the future); default now")
    note: str | None = Field(None, max_length=2000, description="What was said (shown on the timeline)")


class CallOut(BaseModel):
    call_id: str
    customer_id: str
    outcome: CallOutcome
    at: str
    invoice_ids: list[str]
    note: str | None
    no_call_until: str | None = Field(description="A conversation: no call about these debts before this instant")
    logged_by: str | None = Field(description="The person who logged the call, when the request named one")
    logged_at: str
