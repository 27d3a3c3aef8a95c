"""The customer's case (`/customers/{id}`): everything the services know about it, and the actions a collector
takes on it as POST forms (CSRF-checked, collector role or above; a viewer sees no forms and is refused with the
403 page). A change the service refuses re-renders the page (422) with the form's input kept and each error next
to its field; a change done redirects back to the case (303), which says what was done."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from workspace.adapters.platform import ServiceUnavailable
from workspace.domain import formats
from workspace.domain.people import Role
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import CheckedForm, SignedInPerson, require
from workspace.entrypoints.web import TEXTS, Translator, language_of, render
from workspace.service_layer import case_file
from workspace.service_layer.reads import Refused
from workspace.service_layer.sessions import SignedIn

router = APIRouter(include_in_schema=False)
Collector = Depends(require(Role.collector))
ACTIONS = ("call", "pause", "resume", "promise", "plan", "dispute", "resolve", "note")
INTERVALS = ("monthly", "fortnightly", "weekly")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # what a date input sends


def labeller(t: Translator) -> Callable[[str, str], str]:
    """`label("delivery", status)`: the service's code word in the UI language where a text exists for it, else
    the code word itself (a service may add a kind before the workspace has a text for it)."""

    def label(group: str, code: str) -> str:
        key = f"{group}.{code}"
        return t(key) if key in TEXTS else code

    return label


async def show(
    request: Request, runtime: Runtime, signed: SignedIn, customer_id: str, *, status: int = 200,
    active: str | None = None, errors: dict[str, str] | None = None, values: dict[str, Any] | None = None,
) -> HTMLResponse:  # fmt: skip
    t = Translator(language_of(request))
    try:
        case = await case_file.read_case(runtime.objects.platform, signed.person, customer_id)
    except case_file.CustomerNotFound:
        return render(request, "refused.html", 404, title=t("case.not_found.title"),
                      message=t("case.not_found.text", customer_id=customer_id))  # fmt: skip
    except ServiceUnavailable as exc:
        return render(request, "refused.html", 503, title=t("case.title", name=customer_id),
                      message=t("unavailable.text", service=exc.service))  # fmt: skip
    done = request.query_params.get("done")
    return render(
        request, "case.html", status, case=case, fmt=formats, active=active, errors=errors or {},
        values=values or {}, done=done if done in ACTIONS else None, intervals=INTERVALS,
        may_act=signed.person.may(Role.collector), new_key=secrets.token_urlsafe(16), label=labeller(t),
        totals=case_file.total_open(case.open_invoices), base=f"/customers/{quote(customer_id, safe='')}",
        call_outcomes=case_file.CALL_OUTCOMES,
    )  # fmt: skip


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
async def show_case(request: Request, customer_id: str, signed: SignedInPerson, runtime: Runtime) -> HTMLResponse:
    return await show(request, runtime, signed, customer_id)


def _values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    values["invoice_ids"] = [str(v) for v in form.getlist("invoice_ids")]
    return values


async def act(
    request: Request, runtime: Runtime, signed: SignedIn, customer_id: str, action: str, form: FormData,
    change: Callable[[dict[str, Any]], Awaitable[Any]],
) -> Response:  # fmt: skip
    values = _values(form)
    try:
        await change(values)
    except Refused as exc:
        t = Translator(language_of(request))
        errors = dict(exc.errors)
        if "invoice_ids" in errors and exc.service == "workspace":
            errors["invoice_ids"] = t("case.invoices_one_currency")
        if not errors or any(name not in values for name in errors):
            # A refusal about no field of the form (a 404, a 409) shows at the top of the form.
            errors["_form"] = "; ".join(filter(None, [exc.detail, *(r for n, r in errors.items() if n not in values)]))
        return await show(request, runtime, signed, customer_id, status=422 if exc.status < 500 else 503,
                          active=action, errors=errors, values=values)  # fmt: skip
    except ServiceUnavailable as exc:
        # Not done (or not known to be done): the form comes back as it was sent, to send again later.
        message = Translator(language_of(request))("case.not_done", service=exc.service)
        return await show(request, runtime, signed, customer_id, status=503, active=action,
                          errors={"_form": message}, values=values)  # fmt: skip
    target = f"/customers/{quote(customer_id, safe='')}?done={action}#{action}"
    return RedirectResponse(target, status_code=303)


@router.post("/customers/{customer_id}/call")
async def log_call(
    request: Request, customer_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Collector
) -> Response:
    """A call with the debtor, and what was promised in it: the call is logged first (policy engine), then the
    promise (promise-tracker). The promise's fields are checked before anything is sent; a promise the tracker
    still refuses comes back at its fields, the call being logged (the form says so and keeps the input)."""
    language = language_of(request)

    async def change(v: dict[str, Any]) -> None:
        promised = bool(v.get("promise_amount", "").strip() or v.get("promised_date", "").strip())
        chosen = v["invoice_ids"]
        currency = None
        if promised:
            currency = case_file.currency_of(await _open_invoices(runtime, signed, customer_id), chosen)
            amount = case_file.decimal_input(v.get("promise_amount", ""), language)
        key = v.get("idempotency_key") or secrets.token_urlsafe(16)
        await case_file.log_call(runtime.objects.platform, signed.person, customer_id, v.get("outcome", ""), chosen,
                                 v.get("note", "").strip(), key)  # fmt: skip
        if promised and currency is not None:
            try:
                await case_file.record_promise(
                    runtime.objects.platform, signed.person, customer_id, chosen, currency, amount,
                    v.get("promised_date", ""), v.get("note", "").strip(), key + "-promise",
                )  # fmt: skip
            except Refused as exc:
                t = Translator(language)
                errors = {("promise_amount" if k == "amount" else k): r for k, r in exc.errors.items()}
                raise Refused(exc.service, exc.status, {**errors, "_form": t("case.call.logged_promise_refused")},
                              exc.detail) from None  # fmt: skip

    return await act(request, runtime, signed, customer_id, "call", form, change)


@router.post("/customers/{customer_id}/pause")
async def pause(
    request: Request, customer_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Collector
) -> Response:
    """Pause dunning until cleared, or until a day (the optional date field): the policy engine lifts it then."""
    t = Translator(language_of(request))

    async def change(v: dict[str, Any]) -> None:
        until = v.get("until", "").strip()
        if until and not DAY.match(until):
            raise Refused("workspace", 422, {"until": t("case.form.until_invalid")}, "")
        try:
            await case_file.pause(runtime.objects.platform, signed.person, customer_id, v.get("reason", "").strip(),
                                  until or None)  # fmt: skip
        except Refused as exc:
            if "until" in exc.errors:  # the engine's words are English: the form says it in the UI's language
                raise Refused(exc.service, exc.status, {**exc.errors, "until": t("case.form.until_invalid")},
                              exc.detail) from None  # fmt: skip
            raise

    return await act(request, runtime, signed, customer_id, "pause", form, change)


@router.post("/customers/{customer_id}/note")
async def add_note(
    request: Request, customer_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Collector
) -> Response:
    """A note on the case's timeline with the person's name (policy engine); on the chosen invoices' if any."""
    t = Translator(language_of(request))

    async def change(v: dict[str, Any]) -> None:
        text = v.get("text", "").strip()
        if not text:
            raise Refused("workspace", 422, {"text": t("case.form.note_empty")}, "")
        await case_file.add_note(runtime.objects.platform, signed.person, customer_id, text, v["invoice_ids"],
                                 v.get("idempotency_key") or secrets.token_urlsafe(16))  # fmt: skip

    return await act(request, runtime, signed, customer_id, "note", form, change)


@router.post("/customers/{customer_id}/resume")
async def resume(
    request: Request, customer_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Collector
) -> Response:
    async def change(v: dict[str, Any]) -> None:
        await case_file.resume(runtime.objects.platform, signed.person, customer_id)

    return await act(request, runtime, signed, customer_id, "resume", form, change)


async def _open_invoices(runtime: Runtime, signed: SignedIn, customer_id: str) -> list[dict[str, Any]]:
    case = await case_file.read_case(runtime.objects.platform, signed.person, customer_id)
    return case.open_invoices


async def _own_invoice(runtime: Runtime, signed: SignedIn, customer_id: str, invoice_id: str) -> str:
    """`invoice_id` if it is one of this customer's: a case's form acts on its own invoices only."""
    case = await case_file.read_case(runtime.objects.platform, signed.person, customer_id)
    if invoice_id not in {i["id"] for i in case.invoices.value or []}:
        raise Refused("workspace", 422, {"invoice_id": "not an invoice of this customer"}, "")
    return invoice_id


@router.post("/customers/{customer_id}/promise")
async def promise(
    request: Request, customer_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Collector
) -> Response:
    language = language_of(request)

    async def change(v: dict[str, Any]) -> None:
        currency = case_file.currency_of(await _open_invoices(runtime, signed, customer_id), v["invoice_ids"])
        await case_file.record_promise(
            runtime.objects.platform, signed.person, customer_id, v["invoice_ids"], currency,
            case_file.decimal_input(v.get("amount", ""), language), v.get("promised_date", ""),
            v.get("note", "").strip(), v.get("idempotency_key") or secrets.token_urlsafe(16),
        )  # fmt: skip

    return await act(request, runtime, signed, customer_id, "promise", form, change)


@router.post("/customers/{customer_id}/plan")
async def plan(
    request: Request, customer_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Collector
) -> Response:
    language = language_of(request)

    async def change(v: dict[str, Any]) -> None:
        currency = case_file.currency_of(await _open_invoices(runtime, signed, customer_id), v["invoice_ids"])
        total = v.get("total", "").strip()
        await case_file.create_plan(
            runtime.objects.platform, signed.person, customer_id, v["invoice_ids"], currency,
            case_file.decimal_input(total, language) if total else None, v.get("instalment_count", ""),
            v.get("first_due_date", ""), v.get("interval", "monthly"), v.get("note", "").strip(),
            v.get("idempotency_key") or secrets.token_urlsafe(16),
        )  # fmt: skip

    return await act(request, runtime, signed, customer_id, "plan", form, change)


@router.post("/customers/{customer_id}/dispute")
async def open_dispute(
    request: Request, customer_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Collector
) -> Response:
    async def change(v: dict[str, Any]) -> None:
        invoice_id = await _own_invoice(runtime, signed, customer_id, v.get("invoice_id", ""))
        await case_file.dispute(runtime.objects.platform, signed.person, invoice_id, v.get("reason", "").strip(),
                                open_=True)  # fmt: skip

    return await act(request, runtime, signed, customer_id, "dispute", form, change)


@router.post("/customers/{customer_id}/resolve")
async def resolve_dispute(
    request: Request, customer_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Collector
) -> Response:
    async def change(v: dict[str, Any]) -> None:
        invoice_id = await _own_invoice(runtime, signed, customer_id, v.get("invoice_id", ""))
        await case_file.dispute(runtime.objects.platform, signed.person, invoice_id, v.get("reason", "").strip(),
                                open_=False)  # fmt: skip

    return await act(request, runtime, signed, customer_id, "resolve", form, change)
