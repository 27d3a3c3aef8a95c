"""Templates API: the shipped defaults and the tenant's own (per id and locale), and previews.

Templates are customer-editable Jinja2, rendered only in the sandbox (see domain/sandbox.py); saving
checks the syntax of every part and renders it once with sample data, and answers 422 naming the part when it
does not compile or goes over its render budget (domain/render_limits.py). Renders here run in a worker thread:
the event loop keeps answering (/healthz, other tenants' requests, the dispatcher) while one runs, and the
render's budget stops a hostile one within TEMPLATE_RENDER_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from dunning_events import topics
from dunning_events.money import from_minor
from dunning_kit.actor import Acting
from dunning_kit.auth import Admin, Tenant
from dunning_kit.idempotency import Idempotent
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, Limit, Page
from dunning_kit.problems import read_projected
from notifier.domain.context import Branding, build_context
from notifier.domain.default_templates import TONES
from notifier.domain.last_look import last_look
from notifier.domain.rendering import PARTS, RenderedMessage, Renderer, TemplateRenderError, TemplateSource
from notifier.domain.template_choice import choose_template
from notifier.domain.tenant_config import TenantConfig
from notifier.entrypoints.deps import Objects, Runtime, not_found, unprocessable
from notifier.entrypoints.schemas import PreviewOut, TemplateListed, TemplateOut, TemplateVersionOut
from notifier.service_layer import queries
from notifier.service_layer.channel_config import load_config
from notifier.service_layer.objects import NotifierRuntime

router = APIRouter(prefix="/v1/templates", tags=["templates"])

TEMPLATE_ID = r"^[a-z0-9][a-z0-9_\-]{0,99}$"
LOCALE = r"^[a-z]{2}([-_][A-Z]{2})?$"


class TemplateIn(BaseModel):
    locale: str = Field(pattern=LOCALE, description="e.g. en, de, de-DE")
    subject: str = Field(min_length=1, max_length=2000)
    text: str = Field(min_length=1, max_length=50_000)
    html: str | None = Field(None, max_length=50_000)
    sms: str | None = Field(None, max_length=2000)
    voice: str | None = Field(None, max_length=5000)


def _out(t: TemplateSource) -> dict[str, Any]:
    return {"template_id": t.template_id, "locale": t.locale, "origin": t.origin, **{p: t.part(p) for p in PARTS}}


async def _tenant_templates(
    runtime: NotifierRuntime, tenant_id: str, template_id: str | None = None
) -> dict[tuple[str, str], TemplateSource]:
    async with runtime.sessions() as session:
        return await queries.tenant_templates(session, tenant_id, template_id)


@router.get("", response_model=Page[TemplateListed], response_model_exclude_unset=True, description=PAGE_CONTRACT,
            summary="Templates: shipped defaults and the tenant's own, by id, locale and origin")  # fmt: skip
async def list_templates(
    principal: Tenant, runtime: Runtime, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Any:
    async with runtime.sessions() as session:
        return await queries.templates(session, principal.tenant_id, limit=limit, cursor=cursor)


@router.get("/{template_id}", response_model=TemplateOut, summary="One template as it would be used for a locale")
async def get_template(principal: Tenant, runtime: Runtime, template_id: str, locale: str = "en") -> dict[str, Any]:
    own = await _tenant_templates(runtime, principal.tenant_id, template_id)
    chosen = choose_template(own, template_id, locale)
    if chosen is None:
        raise not_found("template")
    if chosen.origin != "tenant":
        return _out(chosen)
    async with runtime.sessions() as session:
        authorship = await queries.template_authorship(session, principal.tenant_id, template_id, chosen.locale)
    return {**_out(chosen), **(authorship or {})}


@router.get("/{template_id}/versions", response_model=Page[TemplateVersionOut], description=PAGE_CONTRACT,
            summary="Every saved version of the tenant's template for a locale, oldest first, with its author")  # fmt: skip
async def list_template_versions(
    principal: Tenant, runtime: Runtime, template_id: str, locale: str, limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Any:  # fmt: skip
    async with runtime.sessions() as session:
        return await queries.template_versions(
            session, principal.tenant_id, template_id, locale, limit=limit, cursor=cursor
        )


@router.put(
    "/{template_id}",
    response_model=TemplateOut,
    summary="Create or replace the tenant's template for a locale (admin)",
    dependencies=[Idempotent],
)
async def put_template(
    principal: Admin, runtime: Runtime, notifier: Objects, template_id: str, body: TemplateIn, actor: Acting
) -> Any:
    import re

    if not re.match(TEMPLATE_ID, template_id):
        return unprocessable([("template_id", "lower-case letters, digits, _ and - only (1-100)")])
    renderer = notifier.renderer
    errors = [
        (part, err)
        for part in PARTS
        if (src := getattr(body, part)) is not None and (err := renderer.check_syntax(part, src))
    ]
    if errors:
        return unprocessable(errors)
    source = TemplateSource(
        template_id, body.locale, body.subject, body.text, body.html, body.sms, body.voice, "tenant"
    )
    config = await load_config(runtime, principal.tenant_id)
    try:
        await render_off_loop(renderer, source, _sample_context(runtime, principal.tenant_id, config, source))
    except TemplateRenderError as exc:
        # Over its render budget (or stopped by the sandbox) with sample data, it would fail every send: refuse
        # it now. Other errors (a name the sample lacks, a type) may depend on the data: the preview with a real
        # customer shows them.
        if exc.limit is not None or exc.message.startswith("blocked by the sandbox"):
            return unprocessable([(exc.part, exc.message)])
    values = {
        "subject": body.subject,
        "body_text": body.text,
        "body_html": body.html,
        "sms": body.sms,
        "voice": body.voice,
        "updated_at": runtime.clock.now(),
    }
    async with runtime.sessions() as session, session.begin():
        version = await queries.save_template(session, principal.tenant_id, template_id, body.locale, values, actor)
    return {**_out(source), "version": version, "author": actor.as_detail() if actor else None}


@router.delete("/{template_id}", status_code=204, summary="Delete the tenant's template for a locale (admin)")
async def delete_template(principal: Admin, runtime: Runtime, template_id: str, locale: str) -> Response:
    async with runtime.sessions() as session, session.begin():
        deleted = await queries.delete_template(session, principal.tenant_id, template_id, locale)
    if not deleted:
        raise not_found("template")
    return Response(status_code=204)


class PreviewIn(BaseModel):
    locale: str | None = Field(None, pattern=LOCALE, description="Default: the customer's, else the tenant's")
    channel: Literal["email", "sms", "voice", "letter", "webhook", "task"] = "email"
    customer_id: str | None = Field(None, description="Render with this customer's real open invoices")
    invoice_ids: list[str] | None = Field(None, description="Limit to these invoices (with customer_id)")
    template: TemplateIn | None = Field(None, description="Unsaved edits to preview instead of the stored template")


def _sample(locale: str, today: date) -> tuple[str, str, list[dict[str, Any]]]:
    currency = "EUR" if locale.startswith("de") else "USD"
    invoices = [
        {
            "invoice_id": "SAMPLE-1",
            "number": "2026-0042",
            "total": "4820.00",
            "balance": "4820.00",
            "due_date": (today - timedelta(days=12)).isoformat(),
            "days_overdue": 12,
        },
        {
            "invoice_id": "SAMPLE-2",
            "number": "2026-0057",
            "total": "1250.00",
            "balance": "750.00",
            "due_date": (today - timedelta(days=5)).isoformat(),
            "days_overdue": 5,
        },
    ]
    return "Initech GmbH" if currency == "EUR" else "Initech Inc.", currency, invoices


async def render_off_loop(renderer: Renderer, template: TemplateSource, context: dict[str, Any]) -> RenderedMessage:
    """A render in a worker thread: the event loop keeps serving while it runs (Python hands the GIL back and
    forth every few milliseconds), and the render's budget ends a hostile one by itself."""
    return await asyncio.to_thread(renderer.render, template, context)


def _context(
    runtime: NotifierRuntime,
    tenant_id: str,
    config: TenantConfig,
    template_id: str,
    *,
    customer_id: str,
    name: str,
    locale: str,
    currency: str,
    invoices: list[dict[str, Any]],
    channel: str,
    now: datetime,
) -> dict[str, Any]:
    step = {
        "template_id": template_id,
        "currency": currency,
        "invoices": invoices,
        "step_name": "preview",
        "tone": TONES.get(template_id, ("",))[0],
    }
    look = last_look(invoices, {}, currency)
    row = {"tenant_id": tenant_id, "customer_id": customer_id, "channel": channel}
    links = runtime.objects.composer.links(
        row, [i.invoice_id for i in look.open_invoices], now, "preview@example.com" if channel == "email" else None
    )
    return build_context(
        customer_id=customer_id,
        customer_name=name,
        contact_name=None,
        locale=locale,
        currency=currency,
        look=look,
        step=step,
        branding=Branding.from_config(config.branding_dict()),
        links=links,
        today=now.date(),
    )


def _sample_context(
    runtime: NotifierRuntime, tenant_id: str, config: TenantConfig, template: TemplateSource
) -> dict[str, Any]:
    now = runtime.clock.now()
    name, currency, invoices = _sample(template.locale, now.date())
    return _context(
        runtime, tenant_id, config, template.template_id, customer_id="SAMPLE", name=name, locale=template.locale,
        currency=currency, invoices=invoices, channel="email", now=now,
    )  # fmt: skip


@router.post("/{template_id}/preview", response_model=PreviewOut, summary="Render a template with sample or real data")
async def preview_template(
    principal: Tenant, runtime: Runtime, notifier: Objects, template_id: str, body: PreviewIn
) -> Any:
    config = await load_config(runtime, principal.tenant_id)
    now = runtime.clock.now()
    customer: dict[str, Any] | None = None
    if body.customer_id is not None:
        customer_id = body.customer_id

        async def load_customer() -> dict[str, Any] | None:
            async with runtime.sessions() as session:
                return await queries.customer(session, principal.tenant_id, customer_id)

        # The customer arrives as a ledger event: a miss is "not arrived yet" or "unknown".
        customer = await read_projected(
            runtime, load_customer, what=f"customer {body.customer_id}", topics=[topics.LEDGER]
        )
        async with runtime.sessions() as session:
            open_rows = await queries.open_invoices(session, principal.tenant_id, customer_id, body.invoice_ids)
        if not open_rows:
            return unprocessable([("customer_id", "the customer has no open invoices to remind of")])
        currency = open_rows[0]["currency"]
        name = str(customer["name"])
        invoices = [
            {
                "invoice_id": r["invoice_id"],
                "number": r["number"],
                "total": str(from_minor(r["total_minor"], currency)),
                "balance": str(from_minor(r["balance_minor"], currency)),
                "due_date": r["due_date"].isoformat() if r["due_date"] else None,
                "days_overdue": max(0, (now.date() - r["due_date"]).days) if r["due_date"] else 0,
            }
            for r in open_rows
            if r["currency"] == currency
        ]
        locale = body.locale or customer.get("locale") or config.default_locale
    else:
        locale = body.locale or config.default_locale
        name, currency, invoices = _sample(locale, now.date())
    if body.template is not None:
        errors = [
            (f"template.{p}", err)
            for p in PARTS
            if (src := getattr(body.template, p)) is not None and (err := notifier.renderer.check_syntax(p, src))
        ]
        if errors:
            return unprocessable(errors)
        t = body.template
        template: TemplateSource | None = TemplateSource(
            template_id, t.locale, t.subject, t.text, t.html, t.sms, t.voice, "tenant"
        )
    else:
        template = choose_template(
            await _tenant_templates(runtime, principal.tenant_id, template_id),
            template_id,
            locale,
            config.default_locale,
        )
    if template is None:
        raise not_found("template")
    context = _context(
        runtime, principal.tenant_id, config, template_id, customer_id=body.customer_id or "SAMPLE", name=name,
        locale=locale, currency=currency, invoices=invoices, channel=body.channel, now=now,
    )  # fmt: skip
    try:
        rendered = await render_off_loop(notifier.renderer, template, context)
    except TemplateRenderError as exc:
        return unprocessable([(f"template.{exc.part}", exc.message)])
    return {
        "template_id": template.template_id,
        "locale": template.locale,
        "origin": template.origin,
        "channel": body.channel,
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
        "sms": rendered.sms,
        "voice": rendered.voice,
        "total": context["total_with_fees"],
        "sample": body.customer_id is None,
    }
