"""Response bodies of the notifier API v1 (requests are declared next to their routes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from notifier.domain.tenant_config import TenantConfig


class DeliveryOut(BaseModel):
    id: str
    customer_id: str
    step_id: str
    channel: str
    status: str
    provider: str | None
    recipient: str | None
    template_id: str | None
    locale: str | None
    subject: str | None
    error: str | None
    attempts: int
    provider_message_id: str | None
    next_attempt_at: str
    sent_at: str | None
    created_at: str
    updated_at: str


class DeliveryDetail(DeliveryOut):
    body_text: str | None = Field(description="Null once the retention job or an erasure removed the body")
    body_html: str | None
    step: dict[str, Any] = Field(description="The dunning.step.due event's data the delivery was made for")


class TaskOut(BaseModel):
    id: str
    tenant_id: str
    customer_id: str
    delivery_id: str
    step_id: str
    title: str
    body: str
    details: dict[str, Any]
    status: str = Field(description="open or done")
    note: str | None
    created_at: str
    completed_at: str | None
    assignee_sub: str | None = Field(None, description="Who works the task (subject at the identity provider)")
    assignee_name: str | None = None
    snoozed_until: str | None = Field(
        None, description="Hidden from the open list until then (include_snoozed shows it)"
    )
    outcome: str | None = Field(None, description="How it ended: done, reached, not_reached, promise_made, ...")
    completed_by: str | None = Field(None, description="The name of the person who completed it, when known")


class SuppressionOut(BaseModel):
    tenant_id: str
    kind: str = Field(description="email or phone")
    address: str
    reason: str = Field(description="unsubscribe, stop, hard_bounce, complaint, manual, ...")
    customer_id: str | None
    detail: str | None
    created_at: str


class SuppressionAdded(BaseModel):
    kind: str
    address: str = Field(description="As normalised (lower-case e-mail, E.164 number)")
    reason: str


class EffectiveChannels(BaseModel):
    email_provider: str
    letter_provider: str
    email_from: str
    sms_from: str | None


class ChannelConfigOut(TenantConfig):
    """The stored configuration (a set webhook secret reads `whsec_…(set)`), and what is in force."""

    effective: EffectiveChannels = Field(description="The configuration with the service's defaults filled in")


class TemplateListed(BaseModel):
    template_id: str
    locale: str
    origin: str = Field(description="shipped (a default) or tenant (the tenant's own)")
    tone: str | None = Field(None, description="Shipped templates: the tone of the default")
    overridden: bool | None = Field(None, description="Shipped templates: the tenant has its own for this locale")


class VersionAuthor(BaseModel):
    sub: str = Field(description="The identity provider's subject of the person who made the version")
    name: str


class TemplateOut(BaseModel):
    template_id: str
    locale: str
    origin: str
    subject: str | None
    text: str | None
    html: str | None
    sms: str | None
    voice: str | None
    version: int | None = Field(None, description="The tenant's template: the version in force (null: shipped)")
    author: VersionAuthor | None = Field(
        None,
        description="Who saved that version from the workspace (Dunning-Actor); null: an API key alone, or shipped",
    )


class TemplateVersionOut(BaseModel):
    version: int
    created_at: str
    author: VersionAuthor | None = Field(description="Who saved it from the workspace; null: an API key alone")
    subject: str
    text: str
    html: str | None
    sms: str | None
    voice: str | None


class PreviewOut(BaseModel):
    template_id: str
    locale: str
    origin: str
    channel: str
    subject: str
    text: str
    html: str | None
    sms: str | None
    voice: str | None
    total: Any = Field(description="What the reminder asks for, fees included (the render context's total)")
    sample: bool = Field(description="Rendered with sample data (no customer_id given)")
