"""promise-tracker API v1: thin routes over the PromiseBook commands and the views, one transaction each."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException
from fastapi.responses import JSONResponse

from dunning_events import topics
from dunning_events.money import to_minor
from dunning_kit.auth import Admin, Tenant
from dunning_kit.idempotency import Idempotent
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, Limit, Page
from dunning_kit.problems import FieldError, invalid_input, read_projected
from promise_tracker.domain.promises import PromiseRejected
from promise_tracker.domain.rules import PromiseRules
from promise_tracker.entrypoints.deps import Runtime
from promise_tracker.entrypoints.schemas import (
    CancelIn,
    PlanIn,
    PlanOut,
    PromiseIn,
    PromiseOut,
    PromiseRecordOut,
    PromiseRulesIn,
    PromiseRulesOut,
)
from promise_tracker.service_layer import views
from promise_tracker.service_layer.book import NewPlan, NewPromise, NotActive, NotFound, PromiseBook
from promise_tracker.service_layer.objects import TrackerRuntime
from promise_tracker.service_layer.rules import load_rules, save_rules

router = APIRouter(prefix="/v1", tags=["promises"])
Status = Literal["active", "kept", "partially_kept", "broken", "cancelled"]


def book(runtime: TrackerRuntime, session: Any, tenant_id: str) -> PromiseBook:
    settings = runtime.settings
    return PromiseBook(
        session,
        runtime.outbox,
        runtime.clock.now(),
        tenant_id,
        settings.default_rules(),
        settings.promise_deadline_settle_seconds,
    )


def rejected(exc: PromiseRejected) -> JSONResponse:
    return invalid_input([FieldError(e.field, e.reason) for e in exc.errors])


def _not_found(what: str) -> HTTPException:
    return HTTPException(404, detail=f"{what} not found")


# ---------------------------------------------------------------- promises


@router.post(
    "/promises",
    status_code=201,
    response_model=PromiseOut,
    summary="Record a promise-to-pay",
    dependencies=[Idempotent],
)
async def record_promise(body: PromiseIn, principal: Tenant, runtime: Runtime) -> JSONResponse:
    try:
        async with runtime.sessions() as session, session.begin():
            promise = await book(runtime, session, principal.tenant_id).record_promise(
                NewPromise(
                    customer_id=body.customer_id,
                    invoice_ids=body.invoice_ids,
                    amount_minor=to_minor(body.amount, body.currency),
                    currency=body.currency,
                    promised_date=body.promised_date,
                    recorded_by=body.recorded_by,
                    note=body.note,
                )
            )
    except PromiseRejected as exc:
        return rejected(exc)
    async with runtime.sessions() as session:
        view = await views.get_promise(session, principal.tenant_id, promise["promise_id"])
    return JSONResponse(view, status_code=201)


@router.get("/promises", response_model=Page[PromiseOut], description=PAGE_CONTRACT,
            summary="List promises, oldest first (filter by customer, invoice, status, plan)")  # fmt: skip
async def list_promises(
    principal: Tenant,
    runtime: Runtime,
    customer_id: str | None = None,
    invoice_id: str | None = None,
    status: Status | None = None,
    plan_id: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Any:
    async with runtime.sessions() as session:
        return await views.list_promises(
            session, principal.tenant_id, customer_id=customer_id, invoice_id=invoice_id, status=status,
            plan_id=plan_id, limit=limit, cursor=cursor,
        )  # fmt: skip


@router.get("/promises/{promise_id}", response_model=PromiseOut, summary="One promise")
async def get_promise(promise_id: str, principal: Tenant, runtime: Runtime) -> dict[str, Any]:
    async with runtime.sessions() as session:
        view = await views.get_promise(session, principal.tenant_id, promise_id)
    if view is None:
        raise _not_found("promise")
    return view


@router.post(
    "/promises/{promise_id}/cancel",
    response_model=PromiseOut,
    summary="Withdraw an active promise (emits promise.cancelled)",
)
async def cancel_promise(
    promise_id: str, principal: Tenant, runtime: Runtime, body: Annotated[CancelIn | None, Body()] = None
) -> dict[str, Any]:
    try:
        async with runtime.sessions() as session, session.begin():
            await book(runtime, session, principal.tenant_id).cancel_promise(promise_id, body.reason if body else None)
    except NotFound:
        raise _not_found("promise") from None
    except NotActive as exc:
        raise HTTPException(409, detail=str(exc)) from None
    async with runtime.sessions() as session:
        return await views.get_promise(session, principal.tenant_id, promise_id) or {}


# ---------------------------------------------------------------- plans


@router.post(
    "/plans",
    status_code=201,
    response_model=PlanOut,
    summary="Create a payment plan (each instalment is a promise)",
    dependencies=[Idempotent],
)
async def create_plan(body: PlanIn, principal: Tenant, runtime: Runtime) -> JSONResponse:
    try:
        async with runtime.sessions() as session, session.begin():
            plan, _ = await book(runtime, session, principal.tenant_id).create_plan(
                NewPlan(
                    customer_id=body.customer_id,
                    invoice_ids=body.invoice_ids,
                    currency=body.currency,
                    total_minor=None if body.total is None else to_minor(body.total, body.currency),
                    instalment_count=body.instalment_count,
                    first_due_date=body.first_due_date,
                    interval=body.interval,
                    recorded_by=body.recorded_by,
                    note=body.note,
                )
            )
    except PromiseRejected as exc:
        return rejected(exc)
    async with runtime.sessions() as session:
        view = await views.get_plan(session, principal.tenant_id, plan["plan_id"])
    return JSONResponse(view, status_code=201)


@router.get("/plans", response_model=Page[PlanOut], description=PAGE_CONTRACT,
            summary="List payment plans, oldest first, each with its instalments")  # fmt: skip
async def list_plans(
    principal: Tenant,
    runtime: Runtime,
    customer_id: str | None = None,
    status: Literal["active", "completed", "defaulted", "cancelled"] | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Any:
    async with runtime.sessions() as session:
        return await views.list_plans(
            session, principal.tenant_id, customer_id=customer_id, status=status, limit=limit, cursor=cursor
        )


@router.get("/plans/{plan_id}", response_model=PlanOut, summary="One payment plan with its instalments")
async def get_plan(plan_id: str, principal: Tenant, runtime: Runtime) -> dict[str, Any]:
    async with runtime.sessions() as session:
        view = await views.get_plan(session, principal.tenant_id, plan_id)
    if view is None:
        raise _not_found("plan")
    return view


@router.post(
    "/plans/{plan_id}/cancel", response_model=PlanOut, summary="Withdraw a plan: its open instalments are cancelled"
)
async def cancel_plan(
    plan_id: str, principal: Tenant, runtime: Runtime, body: Annotated[CancelIn | None, Body()] = None
) -> dict[str, Any]:
    try:
        async with runtime.sessions() as session, session.begin():
            await book(runtime, session, principal.tenant_id).cancel_plan(plan_id, body.reason if body else None)
    except NotFound:
        raise _not_found("plan") from None
    except NotActive as exc:
        raise HTTPException(409, detail=str(exc)) from None
    async with runtime.sessions() as session:
        return await views.get_plan(session, principal.tenant_id, plan_id) or {}


# ---------------------------------------------------------------- customers and rules


@router.get(
    "/customers/{customer_id}/promise-record",
    response_model=PromiseRecordOut,
    summary="Kept and broken promises of a customer",
)
async def promise_record(customer_id: str, principal: Tenant, runtime: Runtime) -> dict[str, Any]:
    async def load() -> dict[str, Any] | None:
        async with runtime.sessions() as session:
            return await views.promise_record(session, principal.tenant_id, customer_id)

    # The customer arrives as a ledger event: a miss is "not arrived yet" or "unknown".
    return await read_projected(runtime, load, what=f"customer {customer_id}", topics=[topics.LEDGER])


@router.get(
    "/admin/promise-rules",
    tags=["admin"],
    response_model=PromiseRulesOut,
    summary="The tenant's promise rules (defaults if never set)",
)
async def get_rules(principal: Admin, runtime: Runtime) -> dict[str, Any]:
    async with runtime.sessions() as session:
        rules = await load_rules(session, principal.tenant_id, runtime.settings.default_rules())
    return asdict(rules)


@router.put(
    "/admin/promise-rules", tags=["admin"], response_model=PromiseRulesOut, summary="Set the tenant's promise rules"
)
async def put_rules(body: PromiseRulesIn, principal: Admin, runtime: Runtime) -> dict[str, Any]:
    rules = PromiseRules(**body.model_dump())
    async with runtime.sessions() as session, session.begin():
        await save_rules(session, principal.tenant_id, rules, runtime.clock.now())
    return asdict(rules)
