"""What a channel is asked to deliver, what it answers, and how a failure is classified (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ChannelName = Literal["email", "sms", "voice", "letter", "webhook", "task"]
CHANNELS: tuple[str, ...] = ("email", "sms", "voice", "letter", "webhook", "task")


@dataclass(frozen=True)
class PostalAddress:
    name: str
    lines: tuple[str, ...]
    postal_code: str
    city: str
    country: str  # ISO 3166-1 alpha-2

    def as_lines(self) -> list[str]:
        return [self.name, *self.lines, f"{self.postal_code} {self.city}".strip(), self.country]


@dataclass(frozen=True)
class Sender:
    """Who the message comes from on its channel (per tenant, defaults from settings)."""

    email: str | None = None
    email_name: str | None = None
    reply_to: str | None = None
    phone: str | None = None
    messaging_service_sid: str | None = None
    company_name: str = ""
    return_address: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboundMessage:
    delivery_id: str
    idempotency_key: str
    tenant_id: str
    customer_id: str
    step_id: str
    channel: str
    recipient: str  # email address, E.164 number, endpoint URL, "postal", "collectors"
    recipient_name: str | None
    locale: str
    subject: str
    text: str
    html: str | None = None
    sms: str | None = None
    voice: str | None = None
    sender: Sender = field(default_factory=Sender)
    headers: dict[str, str] = field(default_factory=dict)
    postal_address: PostalAddress | None = None
    payload: dict[str, Any] = field(default_factory=dict)  # structured data (webhook body, letter table)
    status_callback_url: str | None = None
    webhook_secret: str | None = None
    webhook_secret_error: str | None = None  # the stored secret does not open: retried, never sent unsigned


@dataclass(frozen=True)
class SendReceipt:
    provider: str
    provider_message_id: str | None


class SendError(Exception):
    """A provider did not take the message. `permanent` decides retry vs fail at once."""

    permanent: bool = True
    # The provider may have taken the message: it may have reached the debtor (see OutcomeUnknownError).
    outcome_unknown: bool = False

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        hard_bounce: bool = False,
        provider: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        # The address or number itself is bad: suppress it and tell the policy engine (consent.revoked).
        self.hard_bounce = hard_bounce
        self.provider = provider


class TransientSendError(SendError):
    """The provider certainly did not take the message (connection refused, 429, SMTP 4xx), or it takes our
    idempotency key (a 5xx or a timeout from such a provider is then safe to retry)."""

    permanent = False


class PermanentSendError(SendError):
    """Retrying cannot help (invalid number, hard bounce, 4xx) - or the outcome is unknown and a retry
    could send twice; both fail at once."""

    permanent = True


class OutcomeUnknownError(PermanentSendError):
    """The request may have reached the provider and been acted on - a timeout or a lost connection after it was
    sent, or a 5xx from a provider that takes no idempotency key (Twilio messages and calls, SendGrid). A retry
    could deliver it twice, so it is not retried: the delivery ends `unknown`, reported with notification.failed
    (`outcome_unknown`), and counts as a contact attempt for the contact caps."""

    outcome_unknown = True


class ChannelProvider(Protocol):
    """One small interface for every way a reminder leaves the building."""

    name: str  # provider name recorded on the delivery: smtp, sendgrid, twilio, print_api, ...

    async def send(self, message: OutboundMessage) -> SendReceipt: ...
