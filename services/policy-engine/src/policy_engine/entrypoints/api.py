"""policy-engine API v1: the decision timeline per invoice and per customer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from dunning_kit.auth import Tenant
from dunning_kit.runtime import ServiceRuntime
from policy_engine.adapters import orm

router = APIRouter(prefix="/v1", tags=["timeline"])


async def _timeline(request: Request, tenant: str, column: str, value: str) -> dict[str, Any]:
    runtime: ServiceRuntime = request.app.state.runtime
    t = orm.timeline.c
    async with runtime.sessions() as session:
        rows = (
            (
                await session.execute(
                    select(orm.timeline).where(t.tenant_id == tenant, getattr(t, column) == value).order_by(t.id)
                )
            )
            .mappings()
            .all()
        )
    return {
        "entries": [
            {
                "at": r["at"].isoformat(),
                "kind": r["kind"],
                "step": r["step_name"],
                "invoice_id": r["invoice_id"],
                "reason": r["reason"],
                "detail": r["detail"],
            }
            for r in rows
        ]
    }


@router.get("/invoices/{invoice_id}/timeline", summary="Every decision about one invoice, with its reason")
async def invoice_timeline(invoice_id: str, principal: Tenant, request: Request) -> dict[str, Any]:
    return await _timeline(request, principal.tenant_id, "invoice_id", invoice_id)


@router.get("/customers/{customer_id}/timeline", summary="Every decision about one customer, with its reason")
async def customer_timeline(customer_id: str, principal: Tenant, request: Request) -> dict[str, Any]:
    return await _timeline(request, principal.tenant_id, "customer_id", customer_id)
