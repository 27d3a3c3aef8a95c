"""The customer's self-service page behind the promise-to-pay link in a reminder: no login, a signed
expiring token, server-rendered HTML that works without JavaScript.

The token (dunning_kit.signed_links, made by the notifier) names the tenant, the customer and the
invoices the reminder was about. Every request re-verifies it; a tampered, expired or mismatched token
gets a refusal page and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from dunning_events.money import from_minor
from dunning_kit.signed_links import ExpiredLink, InvalidLink, verify
from promise_tracker.domain.promises import FieldError, PromiseRejected, local_today
from promise_tracker.entrypoints.deps import Runtime
from promise_tracker.service_layer import visits
from promise_tracker.service_layer.book import NewPlan, NewPromise, PromiseBook
from promise_tracker.service_layer.objects import TrackerRuntime
from promise_tracker.service_layer.rules import load_rules
from promise_tracker.service_layer.visits import Session

router = APIRouter(prefix="/self-service", tags=["self-service"], include_in_schema=False)

templates = Environment(
    loader=PackageLoader("promise_tracker", "entrypoints/templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# The token travels in the URL: never leak it to another site, never cache the page, never frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def money(minor: int, currency: str) -> str:
    return f"{currency} {from_minor(minor, currency):,}"


def long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


templates.filters["long_date"] = long_date


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


class Refused(Exception):
    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title
        self.message = message


def refusal(exc: Refused) -> HTMLResponse:
    return page("refused.html", exc.status_code, title=exc.title, message=exc.message)


@dataclass
class OpenInvoice:
    invoice_id: str
    number: str
    currency: str
    balance_minor: int
    due_date: date | None
    covered: bool

    @property
    def balance(self) -> str:
        return money(self.balance_minor, self.currency)


@dataclass
class Visit:
    """What a verified token gives access to."""

    tenant_id: str
    customer_id: str
    customer_name: str
    time_zone: str
    invoices: list[OpenInvoice]  # the token's invoices that are still open


async def open_visit(session: Session, runtime: TrackerRuntime, token: str | None) -> Visit:
    if not token:
        raise Refused(403, "This link cannot be used", "The link is incomplete. Please use the link from your email.")
    try:
        claims = verify(runtime.settings.self_service_signing_key, token, runtime.clock.now())
    except ExpiredLink:
        raise Refused(
            410,
            "This link has expired",
            "For your security, links in our emails only work for a limited time. "
            "Please use the link in your most recent reminder, or contact us.",
        ) from None
    except InvalidLink:
        raise Refused(
            403,
            "This link cannot be used",
            "The link is not valid. Please use the link exactly as it is in your email.",
        ) from None
    tenant_id, customer_id, invoice_ids = claims.get("tenant_id"), claims.get("customer_id"), claims.get("invoice_ids")
    if not (isinstance(tenant_id, str) and isinstance(customer_id, str) and isinstance(invoice_ids, list)):
        raise Refused(403, "This link cannot be used", "The link is not valid. Please use the link from your email.")
    rows = await visits.invoices_named(session, tenant_id, invoice_ids)
    # A link naming an invoice that is not this customer's is refused whole, never shown in part.
    if not rows or any(r.customer_id != customer_id for r in rows):
        raise Refused(
            403,
            "This link cannot be used",
            "This link does not match your account. Please use the link from your email.",
        )
    covered = await visits.covered_invoices(session, tenant_id, [r.invoice_id for r in rows])
    customer = await visits.customer(session, tenant_id, customer_id)
    invoices = [
        OpenInvoice(r.invoice_id, r.number, r.currency, r.balance_minor, r.due_date, r.invoice_id in covered)
        for r in sorted(rows, key=lambda r: (r.due_date or date.max, r.number))
        if r.status == "open" and r.balance_minor > 0
    ]
    return Visit(
        tenant_id=tenant_id,
        customer_id=customer_id,
        customer_name=(customer.name if customer and customer.name else customer_id),
        time_zone=customer.time_zone if customer else "UTC",
        invoices=invoices,
    )


async def _form_context(session: Session, runtime: TrackerRuntime, visit: Visit) -> dict[str, Any]:
    rules = await load_rules(session, visit.tenant_id, runtime.settings.default_rules())
    today = local_today(runtime.clock.now(), visit.time_zone)
    return {
        "visit": visit,
        "today": today,
        "latest": today + timedelta(days=rules.max_horizon_days),
        "max_instalments": max(2, rules.plan_max_instalments),
        "interval": runtime.settings.self_service_plan_interval,
    }


@router.get("/promise", response_class=HTMLResponse)
async def promise_page(runtime: Runtime, token: str | None = None) -> HTMLResponse:
    async with runtime.sessions() as session:
        try:
            visit = await open_visit(session, runtime, token)
        except Refused as exc:
            return refusal(exc)
        context = await _form_context(session, runtime, visit)
    return page("promise_form.html", token=token, errors=[], values={}, **context)


def _field_messages(errors: list[FieldError]) -> list[dict[str, str]]:
    """API field names -> the form control to jump to, and a sentence a customer understands."""
    targets = {
        "invoice_ids": "invoices",
        "amount": "invoices",
        "currency": "invoices",
        "total": "invoices",
        "promised_date": "promised_date",
        "first_due_date": "first_due_date",
        "instalment_count": "instalment_count",
    }
    out = []
    for e in errors:
        target = targets.get(e.field, "invoices")
        reason = e.reason
        if e.field in ("promised_date", "first_due_date"):
            reason = (
                "Choose a date from today up to the latest date shown"
                if "past" in reason or "horizon" in reason
                else reason
            )
        elif e.field == "invoice_ids" and "already covers" in reason:
            reason = "You have already made a promise or plan for one of these invoices"
        elif e.field == "invoice_ids":
            reason = "Choose at least one open invoice"
        elif e.field == "currency":
            reason = "Choose invoices in one currency"
        out.append({"target": target, "message": reason})
    return out


@router.post("/promise", response_class=HTMLResponse)
async def record_from_page(request: Request, runtime: Runtime) -> HTMLResponse:
    form = await request.form()
    token = str(form.get("token") or "")
    choice = "plan" if form.get("choice") == "plan" else "promise"
    chosen = [str(v) for v in form.getlist("invoice_ids")]
    values = {k: str(form.get(k) or "") for k in ("promised_date", "first_due_date", "instalment_count")}
    async with runtime.sessions() as session:
        try:
            visit = await open_visit(session, runtime, token)
        except Refused as exc:
            return refusal(exc)
        offered = {inv.invoice_id: inv for inv in visit.invoices}
        if any(inv_id not in offered for inv_id in chosen):
            return refusal(Refused(403, "This link cannot be used", "The invoices you sent are not part of this link."))
        context = await _form_context(session, runtime, visit)

    selected = [offered[i] for i in chosen]
    errors: list[FieldError] = []
    if not selected:
        errors.append(FieldError("invoice_ids", "Choose at least one open invoice"))
    currencies = {inv.currency for inv in selected}
    if len(currencies) > 1:
        errors.append(FieldError("currency", "Choose invoices in one currency"))
    day_field = "promised_date" if choice == "promise" else "first_due_date"
    try:
        day = date.fromisoformat(values[day_field])
    except ValueError:
        day = None
        errors.append(FieldError(day_field, "Enter a date, for example 2026-03-31"))
    count = 1
    if choice == "plan":
        try:
            count = int(values["instalment_count"])
        except ValueError:
            errors.append(FieldError("instalment_count", "Choose how many instalments"))
    if not errors and day is not None:
        currency = currencies.pop()
        total = sum(inv.balance_minor for inv in selected)
        try:
            async with runtime.sessions() as session, session.begin():
                book = PromiseBook(
                    session, runtime.outbox, runtime.clock.now(), visit.tenant_id,
                    runtime.settings.default_rules(),
                    runtime.settings.promise_deadline_settle_seconds,
                )  # fmt: skip
                if choice == "plan":
                    _, instalments = await book.create_plan(
                        NewPlan(
                            customer_id=visit.customer_id, invoice_ids=chosen, currency=currency, total_minor=total,
                            instalment_count=count, first_due_date=day,
                            interval=runtime.settings.self_service_plan_interval,
                            recorded_by="customer", note="requested on the self-service page",
                        )
                    )  # fmt: skip
                else:
                    instalments = []
                    await book.record_promise(
                        NewPromise(
                            customer_id=visit.customer_id, invoice_ids=chosen, amount_minor=total, currency=currency,
                            promised_date=day, recorded_by="customer", note="recorded on the self-service page",
                        )
                    )  # fmt: skip
        except PromiseRejected as exc:
            errors = exc.errors
        else:
            # Rendered only after the commit: the customer never sees a confirmation of something unsaved.
            return page(
                "done.html",
                visit=visit,
                kind=choice,
                total=money(total, currency),
                day=day,
                instalments=[
                    {"date": i["promised_date"], "amount": money(i["amount_minor"], currency)} for i in instalments
                ],
                invoices=selected,
            )
    return page(
        "promise_form.html",
        422,
        token=token,
        errors=_field_messages(errors),
        values={**values, "choice": choice, "invoice_ids": set(chosen)},
        **context,
    )
