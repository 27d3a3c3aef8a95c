"""Backfill and rebuild of the caller's tenant (service_layer/backfill.py): start one, see where it stands."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from dunning_kit.auth import Admin, Tenant
from dunning_kit.problems import Problem, ProblemDetails
from insights.entrypoints.deps import Runtime
from insights.service_layer.backfill import NoExportKey, backfiller_of

router = APIRouter(prefix="/v1", tags=["backfill"])
NO_KEY: dict[int | str, dict[str, Any]] = {
    409: {"description": "The tenant has no export key (INSIGHTS_EXPORT_KEYS)", "model": ProblemDetails}
}


class SourceStatus(BaseModel):
    source: str = Field(
        description="The export read: `ledger-sync.customers`, `ledger-sync.invoices`, "
        "`policy-engine.events`, `notifier.events` or `promise-tracker.events`"
    )
    state: Literal["running", "stopped", "failed", "finished"] = Field(
        description="running; stopped (the service restarted mid-way: POST again goes on from its cursor); failed "
        "(`error` says why; POST again goes on from the page that failed); finished"
    )
    items: int = Field(description="Items applied so far")
    started_at: datetime
    finished_at: datetime | None
    error: str | None = Field(description="Why the source stopped (the export's answer)")


class BackfillStatus(BaseModel):
    running: bool
    sources: list[SourceStatus]


async def _status(runtime: Runtime, tenant_id: str) -> BackfillStatus:
    backfiller = backfiller_of(runtime)
    sources = [SourceStatus(**row) for row in await backfiller.status(tenant_id)]
    return BackfillStatus(running=backfiller.is_running(tenant_id), sources=sources)


async def _start(runtime: Runtime, tenant_id: str, *, rebuild: bool) -> BackfillStatus:
    try:
        await backfiller_of(runtime).start(tenant_id, rebuild=rebuild)
    except NoExportKey:
        raise Problem(
            409, "Conflict", f"no export key for tenant {tenant_id}: set INSIGHTS_EXPORT_KEYS (tenant=key) to "
            "backfill it",
        ) from None  # fmt: skip
    return await _status(runtime, tenant_id)


@router.post("/backfill", status_code=202, response_model=BackfillStatus, responses=NO_KEY)
async def start_backfill(principal: Admin, runtime: Runtime) -> BackfillStatus:
    """Backfill the tenant's read model from the other services' exports, in the background (202). Sources not
    finished go on from their cursor; when all had finished, the backfill starts again from the beginning (what
    the model already holds is one row per fact whatever arrives twice). 409 when the tenant has no export key."""
    return await _start(runtime, principal.tenant_id, rebuild=False)


@router.get("/backfill", response_model=BackfillStatus)
async def backfill_status(principal: Tenant, runtime: Runtime) -> BackfillStatus:
    """Where the tenant's backfill stands, per source."""
    return await _status(runtime, principal.tenant_id)


@router.post("/rebuild", status_code=202, response_model=BackfillStatus, responses=NO_KEY)
async def rebuild(principal: Admin, runtime: Runtime) -> BackfillStatus:
    """Delete the tenant's read model (not its reporting currency and FX rates) and backfill it again, in the
    background (202). The stream goes on meanwhile: what it brings is kept and counted once. 409 when the tenant
    has no export key."""
    return await _start(runtime, principal.tenant_id, rebuild=True)
