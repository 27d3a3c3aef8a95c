"""ledger-sync REST API v1: thin routes over the Ledger commands, one transaction per request."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dunning_kit.auth import Tenant
from dunning_kit.runtime import ServiceRuntime
from ledger_sync.domain.ledger import LedgerRuleViolation
from ledger_sync.entrypoints.schemas import CustomerIn, InvoiceIn, PaymentIn, WriteResult
from ledger_sync.service_layer.commands import Ledger, Outcome

router = APIRouter(prefix="/v1", tags=["ledger"])


def _result(outcome: Outcome) -> JSONResponse:
    body = WriteResult(
        id=outcome.id, created=outcome.created, changed=bool(outcome.events), events=[e.type for e in outcome.events]
    )
    return JSONResponse(body.model_dump(), status_code=201 if outcome.created else 200)


async def _run(request: Request, tenant: str, action: str, body: object) -> JSONResponse:
    runtime: ServiceRuntime = request.app.state.runtime
    try:
        async with runtime.sessions() as session, session.begin():
            ledger = Ledger(session, runtime.outbox, runtime.clock, tenant)
            outcome = await getattr(ledger, action)(body)
    except LedgerRuleViolation as exc:
        return JSONResponse(
            {"error": "validation failed", "detail": [{"field": exc.field, "reason": exc.reason}]}, status_code=422
        )
    return _result(outcome)


@router.post("/customers", response_model=WriteResult, summary="Create or update a customer by external id")
async def upsert_customer(body: CustomerIn, principal: Tenant, request: Request) -> JSONResponse:
    return await _run(request, principal.tenant_id, "upsert_customer", body)


@router.post("/invoices", response_model=WriteResult, summary="Create or update an invoice by external id")
async def upsert_invoice(body: InvoiceIn, principal: Tenant, request: Request) -> JSONResponse:
    return await _run(request, principal.tenant_id, "upsert_invoice", body)


@router.post("/payments", response_model=WriteResult, summary="Record a payment and its allocations")
async def record_payment(body: PaymentIn, principal: Tenant, request: Request) -> JSONResponse:
    return await _run(request, principal.tenant_id, "record_payment", body)
