"""Turn one due delivery into a decision: send this message, skip (and why), fail (and why), or hold it
(reached outside its contact window).

Everything a decision needs is loaded for the whole batch first (BatchContext), so deciding is a pure
function of the row and that context: consent, suppression, the last look, the recipient, the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote

import phonenumbers

from dunning_kit import signed_links
from notifier.domain.contact_window import OutsideWindow, customer_zone, outside_window
from notifier.domain.context import Branding, Links, build_context
from notifier.domain.erasure import ERASED_SKIP
from notifier.domain.last_look import LastLook, ProjectedInvoice, last_look
from notifier.domain.messages import OutboundMessage, PostalAddress, Sender
from notifier.domain.recipients import (
    InvalidAddress,
    email_of,
    normalize_email,
    normalize_phone,
    phone_of,
    suppression_key,
)
from notifier.domain.rendering import Renderer, TemplateRenderError, TemplateSource, language_of
from notifier.domain.template_choice import choose_template
from notifier.domain.tenant_config import TenantConfig
from notifier.settings import Settings

# Consent defaults mirror the ledger's ConsentFlags: automated SMS and calls need consent on record (TCPA).
CONSENT_DEFAULTS = {"email": True, "sms": False, "voice": False, "letter": True, "webhook": True, "task": True}
_SMS_OPT_OUT = {"en": "Reply STOP to opt out.", "de": "Antworten Sie STOP zum Abbestellen."}
_PARTS_FOR = {
    "email": ("subject", "text", "html"),
    "sms": ("subject", "sms"),
    "voice": ("subject", "voice"),
    "letter": ("subject", "text"),
    "webhook": ("subject", "text"),
    "task": ("subject", "text"),
}


@dataclass(frozen=True)
class Send:
    message: OutboundMessage
    provider: str
    template_id: str
    locale: str
    zone: tzinfo  # the customer's: the send gate checks the contact window again, and explains it locally


@dataclass(frozen=True)
class Skip:
    reason: str
    fallback: bool  # an opted-out channel falls back; a settled step does not


@dataclass(frozen=True)
class Fail:
    reason: str
    recipient: str | None = None


@dataclass(frozen=True)
class Hold:
    """Outside the step's contact window: not sent, not failed; it waits for dunning.step.replanned."""

    outside: OutsideWindow


Decision = Send | Skip | Fail | Hold


@dataclass
class BatchContext:
    customers: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    balances: dict[tuple[str, str], ProjectedInvoice] = field(default_factory=dict)
    configs: dict[str, TenantConfig] = field(default_factory=dict)
    templates: dict[str, dict[tuple[str, str], TemplateSource]] = field(default_factory=dict)
    suppressed: dict[tuple[str, str, str], str] = field(default_factory=dict)  # -> reason
    # Templates that went over their render budget in this batch -> the reason: the batch's other deliveries
    # with the same template fail at once, so a hostile template costs one budget per batch, not one per message.
    over_budget: dict[tuple[str, str, str, str], str] = field(default_factory=dict)

    brandings: dict[str, Branding] = field(default_factory=dict)
    # Tenants whose stored webhook signing secret no configured key opens -> the error naming it.
    secret_errors: dict[str, str] = field(default_factory=dict)

    def config(self, tenant_id: str) -> TenantConfig:
        return self.configs.get(tenant_id) or _DEFAULT_CONFIG

    def branding(self, tenant_id: str) -> Branding:
        if tenant_id not in self.brandings:
            self.brandings[tenant_id] = Branding.from_config(self.config(tenant_id).branding_dict())
        return self.brandings[tenant_id]


_DEFAULT_CONFIG = TenantConfig()


@dataclass(frozen=True)
class Recipient:
    address: str | None
    name: str | None
    error: str | None = None
    postal: PostalAddress | None = None


class Composer:
    def __init__(self, settings: Settings, renderer: Renderer) -> None:
        self.settings = settings
        self.renderer = renderer

    # ------------------------------------------------------------ who

    def recipient(self, row: Mapping[str, Any], customer: Mapping[str, Any] | None, config: TenantConfig) -> Recipient:
        channel = row["channel"]
        if channel == "task":
            return Recipient("collectors", None)
        if channel == "webhook":
            url = config.webhook.url
            return (
                Recipient(str(url), None)
                if url
                else Recipient(None, None, "no webhook endpoint is configured for the tenant")
            )
        if customer is None:
            return Recipient(
                None, None, f"customer {row['customer_id']} is unknown to the notifier (no customer.upserted)"
            )
        contacts = customer.get("contacts") or []
        if channel == "email":
            raw, name = email_of(contacts)
            if raw is None:
                return Recipient(None, None, "the customer has no email address on record")
            try:
                return Recipient(normalize_email(raw), name)
            except InvalidAddress as exc:
                return Recipient(raw, name, f"undeliverable: {exc}")
        if channel in ("sms", "voice"):
            raw, name = phone_of(contacts)
            if raw is None:
                return Recipient(None, None, "the customer has no phone number on record")
            region = customer.get("country") or self.settings.default_phone_region
            try:
                number = normalize_phone(raw, region)
            except InvalidAddress as exc:
                return Recipient(raw, name, f"undeliverable: {exc}")
            if (
                channel == "sms"
                and phonenumbers.number_type(phonenumbers.parse(number)) == phonenumbers.PhoneNumberType.FIXED_LINE
            ):
                return Recipient(number, name, f"undeliverable: {number} is a landline and cannot receive SMS")
            return Recipient(number, name)
        if channel == "letter":
            addr = customer.get("postal_address")
            if not addr or not addr.get("lines"):
                return Recipient(None, None, "the customer has no postal address on record")
            postal = PostalAddress(
                name=str(customer["name"]),
                lines=tuple(addr.get("lines") or ()),
                postal_code=addr.get("postal_code") or "",
                city=addr.get("city") or "",
                country=addr.get("country") or customer.get("country") or "",
            )
            return Recipient("postal", str(customer["name"]), postal=postal)
        return Recipient(None, None, f"unknown channel {channel}")

    # ------------------------------------------------------------ links

    def links(
        self, row: Mapping[str, Any], invoice_ids: list[str], now: datetime, unsubscribe_for: str | None
    ) -> Links:
        s = self.settings
        key = s.self_service_signing_key
        base = {"tenant_id": row["tenant_id"], "customer_id": row["customer_id"], "invoice_ids": invoice_ids}
        expires = now + timedelta(days=s.link_ttl_days)
        promise = signed_links.sign(key, base, expires)
        pay = signed_links.sign(key, {**base, "purpose": "pay"}, expires)
        unsubscribe = None
        if unsubscribe_for is not None:
            token = signed_links.sign(
                key,
                {
                    "tenant_id": row["tenant_id"],
                    "customer_id": row["customer_id"],
                    "purpose": "unsubscribe",
                    "channel": row["channel"],
                    "address": unsubscribe_for,
                },
                now + timedelta(days=s.unsubscribe_ttl_days),
            )
            unsubscribe = f"{s.public_base_url.rstrip('/')}/unsubscribe?token={quote(token)}"
        return Links(
            pay_url=f"{s.public_base_url.rstrip('/')}/pay?token={quote(pay)}",
            promise_url=f"{s.promise_tracker_public_url.rstrip('/')}/self-service/promise?token={quote(promise)}",
            unsubscribe_url=unsubscribe,
        )

    # ------------------------------------------------------------ the decision

    def look(self, row: Mapping[str, Any], ctx: BatchContext) -> LastLook:
        step = row["step"]
        projection = {
            inv["invoice_id"]: ctx.balances[(row["tenant_id"], inv["invoice_id"])]
            for inv in step["invoices"]
            if (row["tenant_id"], inv["invoice_id"]) in ctx.balances
        }
        return last_look(step["invoices"], projection, step["currency"])

    def decide(self, row: Mapping[str, Any], ctx: BatchContext, recipient: Recipient, now: datetime) -> Decision:
        tenant_id, channel, step = row["tenant_id"], row["channel"], row["step"]
        config = ctx.config(tenant_id)
        customer = ctx.customers.get((tenant_id, row["customer_id"]))
        if customer is not None and customer.get("erased_at") is not None:
            # A step that reached the notifier after the erasure (or was already waiting): never sent, on any channel.
            return Skip(ERASED_SKIP, fallback=False)
        look = self.look(row, ctx)
        if look.all_settled:
            return Skip(look.skip_reason(), fallback=False)
        tz = customer_zone((customer or {}).get("time_zone"))
        outside = outside_window(step, now, tz)
        if outside is not None:  # before rendering: a held delivery is rendered again when its new window opens
            return Hold(outside)
        if customer is not None:
            consent = {**CONSENT_DEFAULTS, **(customer.get("consent") or {})}
            if not consent.get(channel, True):
                return Skip(f"no consent on record for {channel}", fallback=True)
        if recipient.error:
            return Fail(recipient.error, recipient.address)
        kind = suppression_key(channel)
        if kind and recipient.address and (tenant_id, kind, recipient.address) in ctx.suppressed:
            why = ctx.suppressed[(tenant_id, kind, recipient.address)]
            return Skip(f"{recipient.address} is on the suppression list ({why})", fallback=True)
        locale = (customer or {}).get("locale") or config.default_locale
        template = choose_template(ctx.templates.get(tenant_id, {}), step["template_id"], locale, config.default_locale)
        if template is None:
            return Fail(f"unknown template '{step['template_id']}'", recipient.address)
        offers_opt_out = channel == "email" and (config.email.list_unsubscribe or config.consumer_debt)
        links = self.links(
            row, [i.invoice_id for i in look.open_invoices], now, recipient.address if offers_opt_out else None
        )
        branding = ctx.branding(tenant_id)
        context = build_context(
            customer_id=row["customer_id"],
            customer_name=str((customer or {}).get("name") or row["customer_id"]),
            contact_name=recipient.name,
            locale=locale,
            currency=step["currency"],
            look=look,
            step=step,
            branding=branding,
            links=links,
            today=now.astimezone(tz).date(),
        )
        budget_key = (tenant_id, template.origin, template.template_id, template.locale)
        if budget_key in ctx.over_budget:
            return Fail(ctx.over_budget[budget_key], recipient.address)
        try:
            rendered = self.renderer.render(template, context, parts=_PARTS_FOR[channel])
        except TemplateRenderError as exc:
            reason = f"template '{template.template_id}' ({template.locale}) failed to render: {exc}"
            if exc.limit is not None:
                ctx.over_budget[budget_key] = reason
            return Fail(reason, recipient.address)
        sms = rendered.sms
        if channel == "sms" and sms is not None and "stop" not in sms.lower():
            sms = f"{sms} {_SMS_OPT_OUT.get(language_of(locale), _SMS_OPT_OUT['en'])}"  # every SMS carries an opt-out
        if channel == "sms" and not sms:
            return Fail(f"template '{template.template_id}' has no sms part", recipient.address)
        if channel == "voice" and not rendered.voice:
            return Fail(f"template '{template.template_id}' has no voice part", recipient.address)
        headers: dict[str, str] = {}
        if links.unsubscribe_url:
            headers["List-Unsubscribe"] = f"<{links.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058 one-click
        sender = Sender(
            email=config.email.from_address or self.settings.email_from,
            email_name=config.email.from_name,
            reply_to=config.email.reply_to,
            phone=(config.voice.from_number if channel == "voice" else config.sms.from_number)
            or self.settings.twilio_from_number,
            messaging_service_sid=config.sms.messaging_service_sid or self.settings.twilio_messaging_service_sid,
            company_name=branding.company_name,
            return_address=branding.address_lines,
        )
        payload: dict[str, Any] = {}
        if channel == "webhook":
            payload = {
                "type": "dunning.reminder",
                "data": {
                    "delivery_id": str(row["id"]),
                    "tenant_id": tenant_id,
                    "customer_id": row["customer_id"],
                    "step_id": row["step_id"],
                    "step_name": step.get("step_name"),
                    "tone": step.get("tone"),
                    "currency": step["currency"],
                    "total": str(look.total),
                    "invoices": [
                        {
                            "invoice_id": i.invoice_id,
                            "number": i.number,
                            "balance": str(i.balance),
                            "due_date": i.due_date,
                        }
                        for i in look.open_invoices
                    ],
                    "pay_url": links.pay_url,
                    "promise_url": links.promise_url,
                    "subject": rendered.subject,
                    "text": rendered.text,
                },
            }
        elif channel == "letter":
            payload = {"primary_color": branding.primary_color}
        elif channel == "task":
            payload = {
                "step_name": step.get("step_name"),
                "tone": step.get("tone"),
                "actions": step.get("actions", []),
                "currency": step["currency"],
                "total": str(look.total),
                "invoices": [
                    {"invoice_id": i.invoice_id, "number": i.number, "balance": str(i.balance)}
                    for i in look.open_invoices
                ],
                "previous_channel_failure": step.get("fallback_reason"),
            }
        message = OutboundMessage(
            delivery_id=str(row["id"]),
            idempotency_key=row["idempotency_key"],
            tenant_id=tenant_id,
            customer_id=row["customer_id"],
            step_id=row["step_id"],
            channel=channel,
            recipient=recipient.address or "",
            recipient_name=recipient.name,
            locale=locale,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            sms=sms,
            voice=rendered.voice,
            sender=sender,
            headers=headers,
            postal_address=recipient.postal,
            payload=payload,
            status_callback_url=f"{self.settings.public_base_url.rstrip('/')}/callbacks/twilio/status"
            if channel in ("sms", "voice")
            else None,
            webhook_secret=config.webhook.secret,
            webhook_secret_error=ctx.secret_errors.get(tenant_id),
        )
        return Send(message, self.provider_for(channel, config), template.template_id, template.locale, tz)

    def provider_for(self, channel: str, config: TenantConfig) -> str:
        if channel == "email":
            return config.email.provider or "smtp"
        if channel in ("sms", "voice"):
            return f"twilio_{channel}"
        if channel == "letter":
            return config.letter.provider or self.settings.letter_provider
        return {"webhook": "webhook", "task": "collector"}[channel]
