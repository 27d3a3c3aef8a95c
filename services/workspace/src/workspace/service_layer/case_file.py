"""A customer's case as staff read it, from every service that knows a part of it, and the actions on it.

Read: the customer and its invoices (ledger-sync), the timeline of dunning decisions and notes and the customer's
dunning block (policy-engine), the deliveries with their outcomes (notifier), promises and payment plans (promise-tracker). Each part is read on its
own, so a service that fails blanks only its section. Act: each action is one call of the service that owns the
change; what the service refuses comes back as `Refused` with its field errors, named as the form names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from workspace.adapters.platform import PlatformClient, ServiceUnavailable
from workspace.domain.people import Person
from workspace.service_layer.reads import Part, Refused, all_pages, parts, send

TIMELINE_MOST = 500  # the first entries of a case (one page, the API's largest); the page shows them newest first
LIST_MOST = 200  # deliveries, promises, plans per case


class CustomerNotFound(Exception):
    pass


@dataclass
class CaseFile:
    customer: dict[str, Any]
    invoices: Part[list[dict[str, Any]]]
    timeline: Part[list[dict[str, Any]]]
    deliveries: Part[list[dict[str, Any]]]
    promises: Part[list[dict[str, Any]]]
    plans: Part[list[dict[str, Any]]]
    # The customer's dunning block as policy-engine holds it: {blocked, reason, until}.
    block: Part[dict[str, Any]] = field(default_factory=Part)

    @property
    def open_invoices(self) -> list[dict[str, Any]]:
        return [i for i in self.invoices.value or [] if i["status"] == "open"]


def _path(customer_id: str) -> str:
    return quote(customer_id, safe="")


async def read_case(platform: PlatformClient, person: Person, customer_id: str) -> CaseFile:
    answer = await platform.call(person, "GET", "ledger-sync", f"/v1/customers/{_path(customer_id)}")
    if answer.status_code == 404:
        raise CustomerNotFound(customer_id)
    if answer.status_code != 200:
        raise ServiceUnavailable("ledger-sync", f"answered {answer.status_code}")
    by_customer = {"customer_id": customer_id}

    async def timeline() -> list[dict[str, Any]]:
        path = f"/v1/customers/{_path(customer_id)}/timeline"
        page = await platform.call(person, "GET", "policy-engine", path, params={"limit": TIMELINE_MOST})
        if page.status_code == 404:  # policy-engine has not heard of the customer (yet): no decision to show
            return []
        if page.status_code != 200:
            raise ServiceUnavailable("policy-engine", f"answered {page.status_code} to GET {path}")
        entries: list[dict[str, Any]] = page.json()["items"]
        return entries[::-1]

    async def block() -> dict[str, Any]:
        path = f"/v1/customers/{_path(customer_id)}/dunning-block"
        answer = await platform.call(person, "GET", "policy-engine", path)
        if answer.status_code == 404:  # not heard of yet: not blocked
            return {"blocked": False}
        if answer.status_code != 200:
            raise ServiceUnavailable("policy-engine", f"answered {answer.status_code} to GET {path}")
        found: dict[str, Any] = answer.json()
        return found

    invoices, decisions, deliveries, promises, plans, blocked = await parts(
        all_pages(platform, person, "ledger-sync", "/v1/invoices", by_customer, most=LIST_MOST),
        timeline(),
        all_pages(platform, person, "notifier", "/v1/deliveries", by_customer, most=LIST_MOST),
        all_pages(platform, person, "promise-tracker", "/v1/promises", by_customer, most=LIST_MOST),
        all_pages(platform, person, "promise-tracker", "/v1/plans", by_customer, most=LIST_MOST),
        block(),
    )
    return CaseFile(answer.json(), invoices, decisions, deliveries, promises, plans, blocked)


# ---------------------------------------------------------------- actions


def _form_field(service_field: str) -> str:
    """The form's name for a field a service named (`invoice_ids.0` is the invoices' checkboxes)."""
    return "invoice_ids" if service_field.startswith("invoice_ids") else service_field


def _renamed(exc: Refused, names: dict[str, str] | None = None) -> Refused:
    errors = {(names or {}).get(f, _form_field(f)): reason for f, reason in exc.errors.items()}
    return Refused(exc.service, exc.status, errors, exc.detail)


async def _act(
    platform: PlatformClient, person: Person, method: str, service: str, path: str, body: Any,
    *, idempotency_key: str | None = None, names: dict[str, str] | None = None,
) -> Any:  # fmt: skip
    """One action's call; what the service refuses comes back with its fields named as the form names them."""
    try:
        return await send(platform, person, method, service, path, body, idempotency_key=idempotency_key)
    except Refused as exc:
        raise _renamed(exc, names) from None


def decimal_input(text: str, language: str) -> str:
    """An amount as typed: `1.234,56` in German, `1,234.56` in English, to the decimal string the APIs take."""
    cleaned = text.strip().replace(" ", "").replace("\xa0", "")
    return cleaned.replace(".", "").replace(",", ".") if language == "de" else cleaned.replace(",", "")


def currency_of(case_invoices: list[dict[str, Any]], chosen: list[str]) -> str:
    """The one currency of the chosen invoices (a promise or plan is in one currency); Refused otherwise."""
    by_id = {i["id"]: i for i in case_invoices}
    currencies = {by_id[i]["currency"] for i in chosen if i in by_id}
    if not chosen or len(currencies) != 1 or any(i not in by_id for i in chosen):
        raise Refused("workspace", 422, {"invoice_ids": "one currency"}, "choose open invoices of one currency")
    return currencies.pop()


CALL_OUTCOMES = ("conversation", "no_answer", "voicemail", "wrong_number", "refused_to_talk")


async def log_call(
    platform: PlatformClient, person: Person, customer_id: str, outcome: str, invoice_ids: list[str],
    note: str | None, idempotency_key: str,
) -> dict[str, Any]:  # fmt: skip
    """A telephone call with the debtor, logged with the policy engine: on the timeline, counted as a call attempt,
    and after a conversation no call about those debts for 7 days (Reg F)."""
    if outcome not in CALL_OUTCOMES:
        raise Refused("workspace", 422, {"outcome": "choose what came of the call"}, "")
    body = {"outcome": outcome, "invoice_ids": invoice_ids or None, "note": note or None}
    found: dict[str, Any] = await _act(
        platform, person, "POST", "policy-engine", f"/v1/customers/{_path(customer_id)}/calls", body,
        idempotency_key=idempotency_key,
    )  # fmt: skip
    return found


async def pause(
    platform: PlatformClient, person: Person, customer_id: str, reason: str | None, until: str | None = None
) -> None:
    """Block the customer's dunning; `until` (a day, YYYY-MM-DD as the date input sends it) ends it by itself when
    that day begins where the debtor lives (policy-engine decides, and refuses a day not after today at `until`)."""
    body = {"reason": reason or None, **({"until": until} if until else {})}
    await _act(platform, person, "PUT", "policy-engine", f"/v1/customers/{_path(customer_id)}/dunning-block", body)


async def add_note(
    platform: PlatformClient, person: Person, customer_id: str, text: str, invoice_ids: list[str],
    idempotency_key: str,
) -> dict[str, Any]:  # fmt: skip
    """A note on the case's timeline (on the chosen invoices' if any), naming the person (policy-engine)."""
    body = {"text": text, "invoice_ids": invoice_ids or None}
    found: dict[str, Any] = await _act(
        platform, person, "POST", "policy-engine", f"/v1/customers/{_path(customer_id)}/notes", body,
        idempotency_key=idempotency_key,
    )  # fmt: skip
    return found


async def resume(platform: PlatformClient, person: Person, customer_id: str) -> None:
    await send(platform, person, "DELETE", "policy-engine", f"/v1/customers/{_path(customer_id)}/dunning-block")


async def record_promise(
    platform: PlatformClient, person: Person, customer_id: str, invoice_ids: list[str], currency: str,
    amount: str, promised_date: str, note: str | None, idempotency_key: str,
) -> dict[str, Any]:  # fmt: skip
    body = {"customer_id": customer_id, "invoice_ids": invoice_ids, "currency": currency, "amount": amount,
            "promised_date": promised_date, "recorded_by": "collector", "note": note or None}  # fmt: skip
    found: dict[str, Any] = await _act(
        platform, person, "POST", "promise-tracker", "/v1/promises", body, idempotency_key=idempotency_key
    )
    return found


async def create_plan(
    platform: PlatformClient, person: Person, customer_id: str, invoice_ids: list[str], currency: str,
    total: str | None, instalment_count: str, first_due_date: str, interval: str, note: str | None,
    idempotency_key: str,
) -> dict[str, Any]:  # fmt: skip
    body = {"customer_id": customer_id, "invoice_ids": invoice_ids, "currency": currency, "total": total or None,
            "instalment_count": instalment_count, "first_due_date": first_due_date, "interval": interval,
            "recorded_by": "collector", "note": note or None}  # fmt: skip
    found: dict[str, Any] = await _act(
        platform, person, "POST", "promise-tracker", "/v1/plans", body, idempotency_key=idempotency_key
    )
    return found


async def dispute(
    platform: PlatformClient, person: Person, invoice_id: str, reason: str | None, *, open_: bool
) -> None:
    path = f"/v1/invoices/{_path(invoice_id)}/dispute" + ("" if open_ else "/resolve")
    body = {"reason": reason or None} if open_ else {"resolution": reason or None}
    # ledger-sync names the invoice `id` (404) and the text `reason` / `resolution`: the form's `invoice_id`, `reason`.
    await _act(platform, person, "POST", "ledger-sync", path, body, names={"id": "invoice_id", "resolution": "reason"})


def total_open(invoices: list[dict[str, Any]]) -> dict[str, Decimal]:
    """The open balance per currency."""
    out: dict[str, Decimal] = {}
    for i in invoices:
        out[i["currency"]] = out.get(i["currency"], Decimal(0)) + Decimal(i["balance"])
    return out
