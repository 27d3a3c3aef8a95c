"""Request and response bodies of the policy-engine API v1 (a policy body is the domain's PolicyDocument)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from policy_engine.domain.closure import ClosureReason
from policy_engine.domain.policy import PolicyDocument


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _until(value: Any) -> datetime | date:
    """An aware instant, or a day (the block then lasts until that day begins where the debtor lives)."""
    if isinstance(value, datetime | date):
        parsed: datetime | date = value
    elif isinstance(value, str) and len(value) == 10:
        parsed = date.fromisoformat(value)
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    else:
        raise ValueError("a date (YYYY-MM-DD) or a date-time with an offset")
    if isinstance(parsed, datetime) and parsed.tzinfo is None:
        raise ValueError("a date-time needs an offset (e.g. Z or +01:00)")
    return parsed


# One field error named `until` whatever is wrong (a union of two pydantic types would name each member).
Until = Annotated[
    datetime | date,
    PlainValidator(_until),
    WithJsonSchema({"type": "string", "description": "A date (YYYY-MM-DD) or a date-time with an offset"}),
]


class BlockIn(_In):
    reason: str | None = Field(None, max_length=500, description="Why dunning is blocked (shown in the timeline)")
    until: Until | None = Field(
        None,
        description="When the block ends by itself (after now): a date-time with an offset, or a date (the block "
        "lasts until that day begins in the customer's time zone, UTC when unknown). Absent: until DELETE.",
    )


class AssignmentIn(_In):
    policy_id: str = Field(min_length=1, max_length=80)


class ImportCadenceIn(_In):
    expected_every_hours: int = Field(
        ge=1, le=24 * 366, description="An import (or API push) must arrive at least this often, else dunning pauses"
    )


# A policy is read from the raw body (JSON or YAML, by Content-Type): both documented with the document's schema.
_POLICY_SCHEMA = {"$ref": "#/components/schemas/PolicyDocument"}
POLICY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A policy document, as JSON or as YAML (the same fields)",
        "content": {"application/json": {"schema": _POLICY_SCHEMA}, "application/yaml": {"schema": _POLICY_SCHEMA}},
    }
}


class PolicyOut(PolicyDocument):
    version: int = Field(description="The version in force (1 for a new policy)")


class PolicyPublished(PolicyOut):
    open_cases_replanned: int = Field(description="Open cases whose next step was planned again under this version")


class PolicyValidated(BaseModel):
    valid: bool
    policy: PolicyDocument = Field(description="The document as it would be stored (defaults filled in)")


class VersionAuthor(BaseModel):
    sub: str = Field(description="The identity provider's subject of the person who made the version")
    name: str


class PolicyVersionOut(BaseModel):
    version: int
    created_at: str | None = Field(description="Null for the built-in default policy's version 1")
    retired_at: str | None
    author: VersionAuthor | None = Field(
        None, description="Who published it from the workspace (Dunning-Actor); null when an API key alone did"
    )
    builtin: bool = False
    document: PolicyDocument


class PolicyRetired(BaseModel):
    policy_id: str
    retired: bool
    open_cases_replanned: int


class AssignmentResult(BaseModel):
    scope: str = Field(description="customer or segment")
    target: str
    policy_id: str | None = Field(description="Null when the assignment was removed")
    open_cases_replanned: int


class AssignmentOut(BaseModel):
    scope: str
    target: str
    policy_id: str
    assigned_at: str


class CustomerBlock(BaseModel):
    customer_id: str
    blocked: bool
    reason: str | None = None
    until: str | None = Field(None, description="When the block ends by itself; null: until it is cleared")


class InvoiceBlock(BaseModel):
    invoice_id: str
    blocked: bool
    reason: str | None = None
    until: str | None = Field(None, description="When the block ends by itself; null: until it is cleared")


class TimelineEntry(BaseModel):
    at: str
    kind: str = Field(description="scheduled, sent, paused, resumed, escalated, cancelled, closed, ...")
    step: str | None
    invoice_id: str | None
    reason: str | None
    detail: dict[str, Any]


class DunningState(BaseModel):
    invoice_id: str
    customer_id: str
    status: str
    paused_by: list[str]
    policy_id: str | None
    policy_version: int | None
    next_step: str | None
    next_at: str | None
    done_steps: list[str]
    balance: str
    currency: str
    closed_reason: str | None = Field(description="Why the case closed, as a sentence (the timeline's words)")
    closure: ClosureReason | None = Field(description="Why the case closed, typed: what may reopen it")
    block_reason: str | None = Field(None, description="The invoice's dunning block, if any: why")
    block_until: str | None = Field(None, description="When the invoice's block ends by itself (null: when cleared)")
    customer_block_until: str | None = Field(
        None, description="When the customer's block ends by itself (null: not blocked, or until cleared)"
    )


class PreviewInvoice(BaseModel):
    invoice_id: str
    number: str | None
    balance: str


class PreviewFee(BaseModel):
    kind: str
    description: str
    amount: str


class PreviewStep(BaseModel):
    model_config = ConfigDict(extra="allow")
    at: str
    customer_id: str
    step: str
    tone: str | None
    template_id: str | None
    channels: list[str]
    currency: str
    amount_due: str
    invoices: list[PreviewInvoice]
    fees: list[PreviewFee]
    late: bool
    policy: str
    day: str = Field(description="The debtor's local date the step would go out on")


class PreviewTotal(BaseModel):
    steps: int
    amount_due: str


class PreviewOut(BaseModel):
    """A report on a window, not a list resource: its totals cover every step, so it is not paged (at most
    PREVIEW_MAX_CASES cases are looked at; `truncated` says when there were more)."""

    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    steps: list[PreviewStep]
    count: int
    totals: dict[str, PreviewTotal] = Field(description="Per currency")
    truncated: bool


class DayChannelVolume(BaseModel):
    day: str
    channel: str
    current: int = Field(description="Messages on that day and channel with the policies in force")
    draft: int = Field(description="With the draft published")


class DraftPreviewOut(BaseModel):
    """What publishing the draft would change in the window (both dry runs, nothing written)."""

    model_config = ConfigDict(populate_by_name=True)
    policy_id: str
    draft_version: int = Field(description="The version the draft would be published as")
    from_: str = Field(alias="from")
    to: str
    current: PreviewOut
    draft: PreviewOut
    per_day_and_channel: list[DayChannelVolume]
    customers_added: list[str] = Field(description="Contacted with the draft, not with the policies in force")
    customers_dropped: list[str] = Field(description="Contacted now, no longer with the draft")
    customers_changed: list[str] = Field(description="Contacted either way, but with other steps, days or channels")


class ImportCadence(BaseModel):
    expected_every_hours: float


class LedgerSource(BaseModel):
    connector: str
    scheduled: bool
    last_success_at: str | None
    last_report_at: str
    last_error: str | None


class LedgerFreshness(BaseModel):
    stale: bool
    reason: str | None
    stale_after_hours: float
    import_cadence: ImportCadence | None
    sources: list[LedgerSource]
