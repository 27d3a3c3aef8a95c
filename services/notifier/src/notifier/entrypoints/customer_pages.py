"""Signed customer-facing pages (no API key; the token is the authorisation): the pay link and the
unsubscribe link (a page with a confirm button, and RFC 8058 one-click POST)."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dunning_events.money import from_minor
from dunning_kit import signed_links
from notifier.domain.rendering import money
from notifier.entrypoints.deps import Runtime
from notifier.service_layer import queries
from notifier.service_layer.channel_config import load_config
from notifier.service_layer.objects import NotifierRuntime
from notifier.service_layer.suppressions import add_suppression

router = APIRouter(tags=["customer pages"])


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f'<title>{escape(title)}</title></head><body style="font-family:sans-serif;max-width:40em;margin:2em auto">'
        f"<h1>{escape(title)}</h1>{body}</body></html>",
        status_code=status,
    )


def _verify(runtime: NotifierRuntime, token: str, purpose: str) -> dict[str, object] | HTMLResponse:
    n = runtime.objects
    try:
        payload = signed_links.verify(n.settings.self_service_signing_key, token, n.clock.now())
    except signed_links.ExpiredLink:
        return _page("This link has expired", "<p>Please use the link in our most recent message.</p>", 410)
    except signed_links.InvalidLink:
        return _page("This link is not valid", "<p>The link is damaged or incomplete.</p>", 400)
    if payload.get("purpose") != purpose:
        return _page("This link is not valid", "<p>The link is not meant for this page.</p>", 400)
    return payload


# The pages answer HTML (a redirect to the tenant's portal when one is configured).
HTML_PAGE: dict[str, Any] = {"response_class": HTMLResponse, "responses": {
    303: {"description": "The tenant's payment portal"}, 400: {"description": "A damaged link (an HTML page)"},
    410: {"description": "An expired link (an HTML page)"}}}  # fmt: skip


# What a mail client posts for RFC 8058 one-click (the confirm button posts an empty form); the token is the query.
ONE_CLICK_BODY: dict[str, Any] = {"requestBody": {"required": False, "content": {
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
        "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}}}}}}}  # fmt: skip


@router.get(
    "/pay", **HTML_PAGE, summary="Pay link of a reminder: redirect to the tenant's portal, or list what is open"
)
async def pay(runtime: Runtime, token: str = "") -> Response:
    payload = _verify(runtime, token, "pay")
    if isinstance(payload, HTMLResponse):
        return payload
    tenant_id, customer_id = str(payload["tenant_id"]), str(payload["customer_id"])
    listed = payload.get("invoice_ids")
    invoice_ids = [str(i) for i in listed] if isinstance(listed, list) else []
    config = await load_config(runtime, tenant_id)
    if config.branding.payment_portal_url:
        query = urlencode({"customer": customer_id, "invoices": ",".join(invoice_ids)})
        sep = "&" if "?" in str(config.branding.payment_portal_url) else "?"
        return RedirectResponse(f"{config.branding.payment_portal_url}{sep}{query}", status_code=303)
    async with runtime.sessions() as session:
        rows = await queries.invoices_to_pay(session, tenant_id, customer_id, invoice_ids)
    items = "".join(
        f"<tr><td>{escape(r.number)}</td><td style='text-align:right'>"
        f"{escape(money(from_minor(r.balance_minor, r.currency), r.currency, 'en') if r.status == 'open' else 'settled')}</td></tr>"
        for r in rows
    )
    company = escape(config.branding.company_name or "us")
    instructions = escape(config.branding.footer or "")
    return _page(
        f"Pay {company}",
        f"<table><thead><tr><th>Invoice</th><th>Open</th></tr></thead><tbody>{items}</tbody></table>"
        f"<p>{instructions}</p>",
    )


@router.get("/unsubscribe", **HTML_PAGE, summary="Unsubscribe page (asks to confirm)")
async def unsubscribe_page(runtime: Runtime, token: str = "") -> Response:
    payload = _verify(runtime, token, "unsubscribe")
    if isinstance(payload, HTMLResponse):
        return payload
    return _page(
        "Unsubscribe",
        f"<p>Stop payment reminders by {escape(str(payload['channel']))} to <strong>{escape(str(payload['address']))}</strong>?</p>"
        f'<form method="post" action="/unsubscribe?{urlencode({"token": token})}">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post("/unsubscribe", **HTML_PAGE, openapi_extra=ONE_CLICK_BODY,
             summary="Unsubscribe (form confirm, or RFC 8058 one-click from the mail client)")  # fmt: skip
async def unsubscribe(runtime: Runtime, token: str = "") -> Response:
    payload = _verify(runtime, token, "unsubscribe")
    if isinstance(payload, HTMLResponse):
        return payload
    channel = str(payload["channel"])
    async with runtime.sessions() as session, session.begin():
        events = await add_suppression(
            session,
            str(payload["tenant_id"]),
            "email" if channel == "email" else "phone",
            str(payload["address"]),
            "unsubscribe",
            str(payload["customer_id"]),
            channel,
            "unsubscribe link",
            runtime.clock.now(),
        )
        await runtime.outbox.add(session, events)
    return _page("You are unsubscribed", "<p>You will not receive further payment reminders at this address.</p>")
