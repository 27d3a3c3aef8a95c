"""The ledger's export: every customer and every invoice of the tenant with its history, in cursor pages, for a
read model to backfill from (insights). The export is the ledger's state, not its events: see the README."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from dunning_kit.auth import Tenant
from dunning_kit.pages import DEFAULT_EXPORT_LIMIT, MAX_EXPORT_LIMIT, Cursor, ExportLimit, Page
from ledger_sync.adapters.ledger_export import customer_page, invoice_page
from ledger_sync.entrypoints.deps import Runtime
from ledger_sync.entrypoints.schemas import ExportCustomer, ExportInvoice

router = APIRouter(prefix="/v1/exports", tags=["exports"])

EXPORT_CONTRACT = (
    f"A cursor page: at most `limit` items (default {DEFAULT_EXPORT_LIMIT}, maximum {MAX_EXPORT_LIMIT}) and "
    "`next_cursor`; pass `next_cursor` back as `cursor` for the next page until it is null. Ordered by id: a walk "
    "while the ledger changes serves every object that existed when it began exactly once, as it is when its "
    "page is read."
)
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    422: {"description": "A bad `cursor` or `limit`: `errors[].field` names it"},
}


@router.get("/customers", response_model=Page[ExportCustomer], description=EXPORT_CONTRACT, responses=RESPONSES,
            summary="Every customer of the tenant: id, name, segment, erased")  # fmt: skip
async def export_customers(
    principal: Tenant, runtime: Runtime, limit: ExportLimit = DEFAULT_EXPORT_LIMIT, cursor: Cursor = None
) -> Response:
    async with runtime.sessions() as session:
        body = await customer_page(session, principal.tenant_id, limit, cursor)
    return Response(body, media_type="application/json")


@router.get("/invoices", response_model=Page[ExportInvoice], description=EXPORT_CONTRACT, responses=RESPONSES,
            summary="Every invoice of the tenant with its payments, credits, close and dispute periods")  # fmt: skip
async def export_invoices(
    principal: Tenant, runtime: Runtime, limit: ExportLimit = DEFAULT_EXPORT_LIMIT, cursor: Cursor = None
) -> Response:
    async with runtime.sessions() as session:
        body = await invoice_page(session, principal.tenant_id, limit, cursor)
    return Response(body, media_type="application/json")
