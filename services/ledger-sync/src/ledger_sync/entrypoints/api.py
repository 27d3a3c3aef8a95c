"""ledger-sync REST API v1: thin routes over the Ledger, one transaction per request.

Every route needs a tenant API key; an id of another tenant is simply not found (404).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from dunning_kit import idempotency
from dunning_kit.auth import Tenant
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, Limit, Page
from dunning_kit.problems import invalid_input
from ledger_sync.adapters import orm
from ledger_sync.domain.ledger import LedgerRuleViolation
from ledger_sync.entrypoints.deps import Runtime
from ledger_sync.entrypoints.problems import error
from ledger_sync.entrypoints.schemas import (
    CreditNoteIn,
    CreditNoteOut,
    CustomerIn,
    CustomerOut,
    InvoiceIn,
    InvoiceOut,
    PaymentIn,
    PaymentOut,
    ReasonIn,
    ResolutionIn,
    WriteResult,
)
from ledger_sync.service_layer.ledger import Ledger, NotFound, RowResult
from ledger_sync.service_layer.objects import LedgerRuntime
from ledger_sync.service_layer.queries import LedgerQueries

router = APIRouter(prefix="/v1", tags=["ledger"])

WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON"},
    401: {"description": "Missing or invalid API key"},
    404: {"description": "No such object for this tenant"},
    422: {"description": "A field is wrong: `errors[].field` names it, `errors[].reason` says why"},
}


def _row(row: RowResult) -> tuple[int, dict[str, Any]]:
    body = WriteResult(id=row.id, created=row.created, changed=row.changed, events=row.events).model_dump()
    return (201 if row.created else 200), body


async def write(
    request: Request, runtime: LedgerRuntime, tenant_id: str, action: Callable[[Ledger], Awaitable[RowResult]]
) -> JSONResponse:
    """Run one write in one transaction, honouring Idempotency-Key; nothing is written on any error."""
    key = request.headers.get(idempotency.HEADER)
    if refused := idempotency.key_problem(key):
        return invalid_input(refused, request=request)
    fingerprint = idempotency.request_fingerprint(request.method, request.url.path, await request.body())
    keys = orm.idempotency_keys
    ttl = timedelta(hours=runtime.settings.idempotency_key_ttl_hours)
    try:
        # The key is claimed and remembered in the write's own transaction: both commit, or neither.
        async with runtime.sessions() as session, session.begin():
            if key:
                stored = await idempotency.claim(
                    session, keys, tenant_id, key, fingerprint, now=runtime.clock.now(), ttl=ttl
                )
                if stored is not None:
                    if stored.request_hash != fingerprint:
                        return invalid_input([idempotency.REUSED], detail="idempotency key reused", request=request)
                    return JSONResponse(
                        stored.response, status_code=stored.status_code, headers={idempotency.REPLAYED: "true"}
                    )
            status, body = _row(await action(Ledger(session, runtime.outbox, runtime.clock, tenant_id)))
            if key:
                await idempotency.remember(session, keys, tenant_id, key, status, body)
    except LedgerRuleViolation as exc:
        return error(422, "validation failed", exc.field, exc.reason)
    except NotFound as exc:
        return error(404, "not found", "id", f"no such object: {exc.args[0]!r}")
    return JSONResponse(body, status_code=status)


# ---------------------------------------------------------------------------------------------- writes


@router.post("/customers", response_model=WriteResult, status_code=201, responses=WRITE_RESPONSES,
             summary="Create or update a customer by external id")  # fmt: skip
async def upsert_customer(body: CustomerIn, principal: Tenant, request: Request, runtime: Runtime) -> JSONResponse:
    return await write(request, runtime, principal.tenant_id, lambda ledger: _one(ledger.upsert_customers([body])))


@router.post("/invoices", response_model=WriteResult, status_code=201, responses=WRITE_RESPONSES,
             summary="Create or update an invoice by external id (changes emit invoice.updated)")  # fmt: skip
async def upsert_invoice(body: InvoiceIn, principal: Tenant, request: Request, runtime: Runtime) -> JSONResponse:
    return await write(request, runtime, principal.tenant_id, lambda ledger: _one(ledger.upsert_invoices([body])))


@router.post("/payments", response_model=WriteResult, status_code=201, responses=WRITE_RESPONSES,
             summary="Record a payment and its allocations (over-payment is kept as unapplied credit)")  # fmt: skip
async def record_payment(body: PaymentIn, principal: Tenant, request: Request, runtime: Runtime) -> JSONResponse:
    return await write(request, runtime, principal.tenant_id, lambda ledger: _one(ledger.record_payments([body])))


@router.post("/credit-notes", response_model=WriteResult, status_code=201, responses=WRITE_RESPONSES,
             summary="Record a credit note and its allocations to invoices")  # fmt: skip
async def record_credit_note(body: CreditNoteIn, principal: Tenant, request: Request, runtime: Runtime) -> JSONResponse:
    return await write(request, runtime, principal.tenant_id, lambda ledger: _one(ledger.record_credit_notes([body])))


async def _one(pending: Awaitable[Any]) -> RowResult:
    result = await pending
    return result.one()


@router.post("/invoices/{invoice_id}/void", response_model=WriteResult, responses=WRITE_RESPONSES,
             summary="Void an invoice (its payments and credits become unapplied credit); emits invoice.voided")  # fmt: skip
async def void_invoice(
    invoice_id: str, principal: Tenant, request: Request, runtime: Runtime, body: ReasonIn | None = None
) -> JSONResponse:
    reason = body.reason if body else None
    return await write(
        request, runtime, principal.tenant_id, lambda ledger: ledger.close_invoice(invoice_id, "void", reason)
    )


@router.post("/invoices/{invoice_id}/write-off", response_model=WriteResult, responses=WRITE_RESPONSES,
             summary="Write off an invoice's open balance; emits invoice.voided with status written_off")  # fmt: skip
async def write_off_invoice(
    invoice_id: str, principal: Tenant, request: Request, runtime: Runtime, body: ReasonIn | None = None
) -> JSONResponse:
    reason = body.reason if body else None
    return await write(
        request, runtime, principal.tenant_id, lambda ledger: ledger.close_invoice(invoice_id, "written_off", reason)
    )


@router.post("/invoices/{invoice_id}/dispute", response_model=WriteResult, responses=WRITE_RESPONSES,
             summary="Open a dispute on an invoice (dunning pauses); emits dispute.opened")  # fmt: skip
async def open_dispute(
    invoice_id: str, principal: Tenant, request: Request, runtime: Runtime, body: ReasonIn | None = None
) -> JSONResponse:
    reason = body.reason if body else None
    return await write(
        request, runtime, principal.tenant_id, lambda ledger: ledger.set_dispute(invoice_id, open_=True, note=reason)
    )


@router.post("/invoices/{invoice_id}/dispute/resolve", response_model=WriteResult, responses=WRITE_RESPONSES,
             summary="Resolve an invoice's dispute (dunning resumes); emits dispute.resolved")  # fmt: skip
async def resolve_dispute(
    invoice_id: str, principal: Tenant, request: Request, runtime: Runtime, body: ResolutionIn | None = None
) -> JSONResponse:
    note = body.resolution if body else None
    return await write(
        request, runtime, principal.tenant_id, lambda ledger: ledger.set_dispute(invoice_id, open_=False, note=note)
    )


@router.post("/payments/{payment_id}/reverse", response_model=WriteResult, responses=WRITE_RESPONSES,
             summary="Reverse a payment (bounced, charged back): invoices reopen; emits payment.reversed")  # fmt: skip
async def reverse_payment(
    payment_id: str, principal: Tenant, request: Request, runtime: Runtime, body: ReasonIn | None = None
) -> JSONResponse:
    reason = body.reason if body else None
    return await write(request, runtime, principal.tenant_id, lambda ledger: ledger.reverse_payment(payment_id, reason))


# ---------------------------------------------------------------------------------------------- reads


def _not_found(kind: str, object_id: str) -> JSONResponse:
    return error(404, "not found", "id", f"no {kind} {object_id!r}")


async def _read(runtime: LedgerRuntime, tenant_id: str, fn: Callable[[LedgerQueries], Awaitable[Any]]) -> Any:
    async with runtime.sessions() as session:
        try:
            return await fn(LedgerQueries(session, tenant_id))
        except LedgerRuleViolation as exc:
            return error(422, "validation failed", exc.field, exc.reason)


@router.get("/customers", response_model=Page[CustomerOut], description=PAGE_CONTRACT, summary="List customers")
async def list_customers(
    principal: Tenant, runtime: Runtime, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None, segment: str | None = None
) -> Any:
    page = await _read(runtime, principal.tenant_id, lambda q: q.customers(limit=limit, cursor=cursor, segment=segment))
    return page


@router.get("/customers/{customer_id}", response_model=CustomerOut, responses={404: {}}, summary="Get a customer")
async def get_customer(customer_id: str, principal: Tenant, runtime: Runtime) -> Any:
    found = await _read(runtime, principal.tenant_id, lambda q: q.customer(customer_id))
    return found if found is not None else _not_found("customer", customer_id)


@router.get(
    "/invoices",
    response_model=Page[InvoiceOut],
    description=PAGE_CONTRACT,
    summary="List invoices (filters: status, customer, overdue as of a date)",
)
async def list_invoices(
    principal: Tenant,
    runtime: Runtime,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: Literal["open", "paid", "void", "written_off"] | None = None,
    customer_id: str | None = None,
    overdue_as_of: date | None = Query(None, description="Only open invoices whose due date is before this date"),
) -> Any:
    today = runtime.clock.now().date()
    page = await _read(
        runtime,
        principal.tenant_id,
        lambda q: q.invoices(
            limit=limit, cursor=cursor, status=status, customer_id=customer_id, overdue_as_of=overdue_as_of, today=today
        ),
    )
    return page


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut, responses={404: {}},
            summary="Get an invoice with the payments and credits applied to it")  # fmt: skip
async def get_invoice(invoice_id: str, principal: Tenant, runtime: Runtime) -> Any:
    today = runtime.clock.now().date()
    found = await _read(runtime, principal.tenant_id, lambda q: q.invoice(invoice_id, today))
    return found if found is not None else _not_found("invoice", invoice_id)


@router.get("/payments", response_model=Page[PaymentOut], description=PAGE_CONTRACT, summary="List payments")
async def list_payments(
    principal: Tenant,
    runtime: Runtime,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    customer_id: str | None = None,
) -> Any:
    page = await _read(
        runtime, principal.tenant_id, lambda q: q.payments(limit=limit, cursor=cursor, customer_id=customer_id)
    )
    return page


@router.get(
    "/payments/{payment_id}",
    response_model=PaymentOut,
    responses={404: {}},
    summary="Get a payment and its allocations",
)
async def get_payment(payment_id: str, principal: Tenant, runtime: Runtime) -> Any:
    found = await _read(runtime, principal.tenant_id, lambda q: q.payment(payment_id))
    return found if found is not None else _not_found("payment", payment_id)


@router.get("/credit-notes", response_model=Page[CreditNoteOut], description=PAGE_CONTRACT, summary="List credit notes")
async def list_credit_notes(
    principal: Tenant,
    runtime: Runtime,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    customer_id: str | None = None,
) -> Any:
    page = await _read(
        runtime, principal.tenant_id, lambda q: q.credit_notes(limit=limit, cursor=cursor, customer_id=customer_id)
    )
    return page


@router.get("/credit-notes/{credit_note_id}", response_model=CreditNoteOut, responses={404: {}},
            summary="Get a credit note and its allocations")  # fmt: skip
async def get_credit_note(credit_note_id: str, principal: Tenant, runtime: Runtime) -> Any:
    found = await _read(runtime, principal.tenant_id, lambda q: q.credit_note(credit_note_id))
    return found if found is not None else _not_found("credit note", credit_note_id)
