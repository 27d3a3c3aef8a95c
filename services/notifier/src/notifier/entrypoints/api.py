"""notifier API v1: the deliveries of a tenant (what was sent, to whom, with what outcome)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from dunning_kit.auth import Tenant
from dunning_kit.runtime import ServiceRuntime
from notifier.adapters import orm

router = APIRouter(prefix="/v1", tags=["deliveries"])


@router.get("/deliveries", summary="Deliveries of the tenant, newest first")
async def list_deliveries(principal: Tenant, request: Request, limit: int = 100) -> dict[str, Any]:
    runtime: ServiceRuntime = request.app.state.runtime
    d = orm.deliveries.c
    async with runtime.sessions() as session:
        rows = (
            (
                await session.execute(
                    select(d.id, d.customer_id, d.step_id, d.channel, d.status, d.recipient, d.subject, d.error)
                    .where(d.tenant_id == principal.tenant_id)
                    .order_by(d.created_at.desc())
                    .limit(min(limit, 1000))
                )
            )
            .mappings()
            .all()
        )
    return {"deliveries": [{**r, "id": str(r["id"])} for r in rows]}
