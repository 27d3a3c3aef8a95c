"""A tenant's channel configuration: which provider per channel, sender identities, branding, webhook
endpoint. Stored as JSON per tenant (PUT /v1/channel-config); anything left out falls back to settings."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from notifier.domain.recipients import InvalidAddress, normalize_email, normalize_phone

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailConfig(_Section):
    provider: Literal["smtp", "sendgrid"] | None = Field(None, description="Default: smtp")
    from_address: str | None = Field(None, description="From address (default: the EMAIL_FROM setting)")
    from_name: str | None = Field(None, max_length=200)
    reply_to: str | None = None
    list_unsubscribe: bool = Field(True, description="Add List-Unsubscribe (+ one-click) headers and a footer link")

    @field_validator("from_address", "reply_to")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_email(value)
        except InvalidAddress as exc:
            raise ValueError(str(exc)) from exc


class PhoneConfig(_Section):
    provider: Literal["twilio"] = "twilio"
    from_number: str | None = Field(None, description="Sender number, E.164 (default: TWILIO_FROM_NUMBER)")
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_phone(value)
        except InvalidAddress as exc:
            raise ValueError(str(exc)) from exc


class LetterConfig(_Section):
    provider: Literal["print_api", "drop_folder"] | None = Field(None, description="Default: LETTER_PROVIDER")
    return_address: list[str] = Field(default_factory=list, max_length=6)


class WebhookConfig(_Section):
    url: HttpUrl | None = Field(None, description="The tenant's endpoint for reminder webhooks")
    secret: str | None = Field(None, description="Standard Webhooks signing secret: whsec_ + base64")

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import base64
        import binascii

        if not value.startswith("whsec_"):
            raise ValueError("must start with whsec_ followed by base64")
        try:
            if len(base64.b64decode(value[6:] + "==", validate=False)) < 16:
                raise ValueError("the secret must be at least 16 bytes")
        except binascii.Error as exc:
            raise ValueError("not valid base64 after whsec_") from exc
        return value


class BrandingConfig(_Section):
    company_name: str | None = Field(None, max_length=200)
    sender_name: str | None = Field(None, max_length=200)
    primary_color: str | None = Field(None, description="#RRGGBB")
    accent_color: str | None = Field(None, description="#RRGGBB")
    logo_url: HttpUrl | None = None
    address_lines: list[str] = Field(default_factory=list, max_length=6)
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=320)
    footer: str | None = Field(None, max_length=1000)
    payment_portal_url: HttpUrl | None = Field(
        None, description="Where the reminder's pay link redirects (default: a page listing the open invoices)"
    )

    @field_validator("primary_color", "accent_color")
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        # Colours end up in style attributes: only #RRGGBB, nothing that could close the attribute.
        if value is not None and not _HEX.match(value):
            raise ValueError("must be a colour like #1F4E79")
        return value


class TenantConfig(_Section):
    email: EmailConfig = Field(default_factory=EmailConfig)
    sms: PhoneConfig = Field(default_factory=PhoneConfig)
    voice: PhoneConfig = Field(default_factory=PhoneConfig)
    letter: LetterConfig = Field(default_factory=LetterConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    branding: BrandingConfig = Field(default_factory=BrandingConfig)
    default_locale: str = Field("en", pattern=r"^[a-z]{2}([-_][A-Z]{2})?$")
    consumer_debt: bool = Field(
        False, description="Consumer debt (Reg F): an opt-out link in every email and SMS, whatever email says"
    )

    def branding_dict(self) -> dict[str, object]:
        b = self.branding.model_dump(mode="json", exclude_none=True)
        b.pop("payment_portal_url", None)
        return b
