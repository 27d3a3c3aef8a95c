"""policy-engine API v1: policies and their versions, assignments, dunning blocks, timelines, the preview.

Policies and assignments need an admin-scoped key; blocks, timelines and the preview a tenant key.
Another tenant's invoice or customer is 404, like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from dunning_events import topics
from dunning_kit.actor import Acting, Actor
from dunning_kit.auth import Admin, Tenant
from dunning_kit.idempotency import Idempotent
from dunning_kit.input_guard import unstorable_values
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, Limit, Page
from dunning_kit.problems import FieldError, invalid_input, read_projected
from policy_engine.adapters import repository as repo
from policy_engine.domain.blocks import block_end
from policy_engine.domain.policy import (
    InvalidPolicy,
    Policy,
    PolicyError,
    parse_policy_text,
    validate_policy,
)
from policy_engine.entrypoints.deps import Runtime
from policy_engine.entrypoints.schemas import (
    POLICY_BODY,
    AssignmentIn,
    AssignmentOut,
    AssignmentResult,
    BlockIn,
    CustomerBlock,
    DraftPreviewOut,
    DunningState,
    ImportCadenceIn,
    InvoiceBlock,
    LedgerFreshness,
    PolicyOut,
    PolicyPublished,
    PolicyRetired,
    PolicyValidated,
    PolicyVersionOut,
    PreviewOut,
    TimelineEntry,
)
from policy_engine.service_layer import freshness, policy_admin, queries
from policy_engine.service_layer.handlers import Engine
from policy_engine.service_layer.objects import EngineRuntime
from policy_engine.service_layer.preview import compare_draft
from policy_engine.service_layer.preview import preview as run_preview

router = APIRouter(prefix="/v1")


def _invalid(errors: list[PolicyError]) -> JSONResponse:
    return invalid_input([FieldError(e.path, e.reason) for e in errors], detail="invalid policy")


async def _policy_body(request: Request, path_id: str | None = None) -> Any:
    """The policy document from a JSON or YAML body (Content-Type application/json or application/yaml)."""
    content_type = request.headers.get("content-type", "application/json")
    raw = parse_policy_text(await request.body(), content_type)
    # The edge guard reads JSON bodies only; a YAML policy (`"\0"`, `.inf`) is checked here the same way.
    unstorable = [PolicyError(e.field, e.reason) for e in unstorable_values(raw)]
    if unstorable:
        raise InvalidPolicy(unstorable)
    if path_id is not None and isinstance(raw, dict):
        if "id" in raw and raw["id"] != path_id:
            raise InvalidPolicy([PolicyError("id", f"must match the policy in the path ({path_id})")])
        raw = {"id": path_id, **raw}
    return validate_policy(raw)


# ---------------------------------------------------------------- policies (admin)


@router.post(
    "/policies/validate",
    tags=["policies"],
    response_model=PolicyValidated,
    openapi_extra=POLICY_BODY,
    summary="Validate a policy (JSON or YAML) without storing it",
)
async def validate(request: Request, principal: Admin) -> Any:
    try:
        doc = await _policy_body(request)
    except InvalidPolicy as exc:
        return _invalid(exc.errors)
    return {"valid": True, "policy": doc.model_dump(mode="json")}


@router.post("/policies", status_code=201, tags=["policies"], response_model=PolicyPublished, openapi_extra=POLICY_BODY,
             summary="Create a policy (version 1)", dependencies=[Idempotent])  # fmt: skip
async def create_policy(request: Request, runtime: Runtime, principal: Admin, actor: Acting) -> Any:
    try:
        doc = await _policy_body(request)
    except InvalidPolicy as exc:
        return _invalid(exc.errors)
    return await _publish(runtime, principal.tenant_id, doc, must_be_new=True, author=actor)


@router.put("/policies/{policy_id}", tags=["policies"], response_model=PolicyPublished, openapi_extra=POLICY_BODY,
            responses={201: {"description": "The policy did not exist: version 1", "model": PolicyPublished}},
            summary="Publish a new version of a policy", dependencies=[Idempotent])  # fmt: skip
async def put_policy(policy_id: str, request: Request, runtime: Runtime, principal: Admin, actor: Acting) -> Any:
    try:
        doc = await _policy_body(request, policy_id)
    except InvalidPolicy as exc:
        return _invalid(exc.errors)
    return await _publish(runtime, principal.tenant_id, doc, must_be_new=False, author=actor)


async def _publish(runtime: EngineRuntime, tenant: str, doc: Any, *, must_be_new: bool, author: Actor | None) -> Any:
    async with runtime.sessions() as session, session.begin():
        apg = await repo.driver(session)
        try:
            version, replanned = await policy_admin.publish(
                apg, tenant, doc, runtime.clock.now(), must_be_new=must_be_new, author=author
            )
        except policy_admin.PolicyConflict as exc:
            raise HTTPException(409, str(exc)) from None
    body = {**doc.model_dump(mode="json"), "version": version, "open_cases_replanned": replanned}
    return JSONResponse(body, status_code=201 if version == 1 or must_be_new else 200)


async def _current_policies(runtime: EngineRuntime, tenant: str) -> dict[str, Any]:
    async with runtime.sessions() as session:
        return await runtime.objects.book.for_tenant(await repo.driver(session), tenant)


@router.get("/policies", tags=["policies"], response_model=Page[PolicyOut], description=PAGE_CONTRACT,
            summary="Every policy in force, at its current version, in the order they are tried")  # fmt: skip
async def list_policies(runtime: Runtime, principal: Admin, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Any:
    current = await _current_policies(runtime, principal.tenant_id)
    return queries.policies_page(current, limit=limit, cursor=cursor)


@router.get("/policies/{policy_id}", tags=["policies"], response_model=PolicyOut,
            summary="A policy at its current version")  # fmt: skip
async def get_policy(policy_id: str, runtime: Runtime, principal: Admin) -> Any:
    current = await _current_policies(runtime, principal.tenant_id)
    if policy_id not in current:
        raise HTTPException(404, f"no policy {policy_id}")
    return current[policy_id].to_json()


@router.get("/policies/{policy_id}/versions", tags=["policies"], response_model=Page[PolicyVersionOut],
            description=PAGE_CONTRACT, summary="Every version of a policy, oldest first")  # fmt: skip
async def list_versions(
    policy_id: str, runtime: Runtime, principal: Admin, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Any:
    async with runtime.sessions() as session:
        page = await queries.versions_page(
            await repo.driver(session), principal.tenant_id, policy_id, limit=limit, cursor=cursor
        )
    if page is None:
        raise HTTPException(404, f"no policy {policy_id}")
    return page


@router.get("/policies/{policy_id}/versions/{version}", tags=["policies"], response_model=PolicyVersionOut,
            summary="One version of a policy")  # fmt: skip
async def get_version(policy_id: str, version: int, runtime: Runtime, principal: Admin) -> Any:
    async with runtime.sessions() as session:
        found = await policy_admin.versions(await repo.driver(session), principal.tenant_id, policy_id)
    if not found:
        raise HTTPException(404, f"no policy {policy_id}")
    for v in found:
        if v["version"] == version:
            return v
    raise HTTPException(404, f"policy {policy_id} has no version {version}")


@router.delete("/policies/{policy_id}", status_code=200, tags=["policies"], response_model=PolicyRetired,
               summary="Retire a policy")  # fmt: skip
async def delete_policy(policy_id: str, runtime: Runtime, principal: Admin) -> dict[str, Any]:
    async with runtime.sessions() as session, session.begin():
        try:
            replanned = await policy_admin.retire(
                await repo.driver(session), principal.tenant_id, policy_id, runtime.clock.now()
            )
        except policy_admin.PolicyConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except policy_admin.UnknownPolicy:
            raise HTTPException(404, f"no policy {policy_id}") from None
    return {"policy_id": policy_id, "retired": True, "open_cases_replanned": replanned}


# ---------------------------------------------------------------- assignments (admin)


async def _assign(
    runtime: EngineRuntime, tenant: str, scope: str, target: str, policy_id: str | None
) -> dict[str, Any]:
    async with runtime.sessions() as session, session.begin():
        apg = await repo.driver(session)
        if policy_id is not None and policy_id not in await runtime.objects.book.for_tenant(apg, tenant):
            return invalid_input([FieldError("policy_id", f"no policy {policy_id}")])  # type: ignore[return-value]
        replanned = await policy_admin.assign(apg, tenant, scope, target, policy_id, runtime.clock.now())
    return {"scope": scope, "target": target, "policy_id": policy_id, "open_cases_replanned": replanned}


@router.put(
    "/assignments/customers/{customer_id}",
    tags=["assignments"],
    response_model=AssignmentResult,
    summary="Assign a policy to a customer",
)
async def assign_customer(customer_id: str, body: AssignmentIn, runtime: Runtime, principal: Admin) -> Any:
    return await _assign(runtime, principal.tenant_id, "customer", customer_id, body.policy_id)


@router.delete(
    "/assignments/customers/{customer_id}",
    tags=["assignments"],
    response_model=AssignmentResult,
    summary="Remove a customer's assignment",
)
async def unassign_customer(customer_id: str, runtime: Runtime, principal: Admin) -> Any:
    return await _assign(runtime, principal.tenant_id, "customer", customer_id, None)


@router.put(
    "/assignments/segments/{segment}",
    tags=["assignments"],
    response_model=AssignmentResult,
    summary="Assign a policy to a segment",
)
async def assign_segment(segment: str, body: AssignmentIn, runtime: Runtime, principal: Admin) -> Any:
    return await _assign(runtime, principal.tenant_id, "segment", segment, body.policy_id)


@router.delete(
    "/assignments/segments/{segment}",
    tags=["assignments"],
    response_model=AssignmentResult,
    summary="Remove a segment's assignment",
)
async def unassign_segment(segment: str, runtime: Runtime, principal: Admin) -> Any:
    return await _assign(runtime, principal.tenant_id, "segment", segment, None)


@router.get("/assignments", tags=["assignments"], response_model=Page[AssignmentOut], description=PAGE_CONTRACT,
            summary="Every policy assignment, by scope and target")  # fmt: skip
async def list_assignments(
    runtime: Runtime, principal: Admin, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Any:
    async with runtime.sessions() as session:
        return await queries.assignments_page(
            await repo.driver(session), principal.tenant_id, limit=limit, cursor=cursor
        )


# ---------------------------------------------------------------- dunning blocks


def _engine(runtime: EngineRuntime, session: Any, actor: Actor | None = None) -> Engine:
    objects = runtime.objects
    return Engine(session, runtime.outbox, runtime.clock, objects.config, objects.book).acting_for(actor)


async def _customer_known(session: Any, tenant: str, customer_id: str) -> bool:
    return await queries.customer_known(await repo.driver(session), tenant, customer_id)


def _until_refused(end: datetime | None, now: datetime) -> JSONResponse | None:
    if end is not None and end <= now:
        return invalid_input([FieldError("until", f"must be after now ({now.isoformat()})", "body")])
    return None


@router.put(
    "/customers/{customer_id}/dunning-block",
    tags=["blocks"],
    response_model=CustomerBlock,
    summary="Pause all dunning of a customer (until cleared, or until `until`)",
)
async def block_customer(
    customer_id: str, runtime: Runtime, principal: Tenant, actor: Acting, body: BlockIn | None = None
) -> Any:
    body = body or BlockIn()
    async with runtime.sessions() as session, session.begin():
        if not await _customer_known(session, principal.tenant_id, customer_id):
            raise HTTPException(404, f"no customer {customer_id}")
        engine = _engine(runtime, session, actor)
        end = await _block_end(engine, principal.tenant_id, customer_id, body)
        if (refused := _until_refused(end, engine.now)) is not None:
            return refused
        await engine.set_customer_block(principal.tenant_id, customer_id, body.reason, end)
    return {"customer_id": customer_id, "blocked": True, "reason": body.reason, "until": _iso(end)}


@router.get(
    "/customers/{customer_id}/dunning-block",
    tags=["blocks"],
    response_model=CustomerBlock,
    summary="The customer's dunning block: whether set, why, and until when",
)
async def customer_block(customer_id: str, runtime: Runtime, principal: Tenant) -> Any:
    async with runtime.sessions() as session:
        apg = await repo.driver(session)
        row = await repo.customer_block(apg, principal.tenant_id, customer_id)
        if row is None and not await queries.customer_known(apg, principal.tenant_id, customer_id):
            raise HTTPException(404, f"no customer {customer_id}")
    if row is None or not row["blocked"]:
        return {"customer_id": customer_id, "blocked": False}
    return {"customer_id": customer_id, "blocked": True, "reason": row["block_reason"],
            "until": _iso(row["block_until"])}  # fmt: skip


@router.delete(
    "/customers/{customer_id}/dunning-block",
    tags=["blocks"],
    response_model=CustomerBlock,
    summary="Resume dunning of a customer",
)
async def unblock_customer(customer_id: str, runtime: Runtime, principal: Tenant, actor: Acting) -> Any:
    async with runtime.sessions() as session, session.begin():
        if not await _customer_known(session, principal.tenant_id, customer_id):
            raise HTTPException(404, f"no customer {customer_id}")
        await _engine(runtime, session, actor).clear_customer_block(principal.tenant_id, customer_id)
    return {"customer_id": customer_id, "blocked": False}


@router.put(
    "/invoices/{invoice_id}/dunning-block",
    tags=["blocks"],
    response_model=InvoiceBlock,
    summary="Pause dunning of one invoice (until cleared, or until `until`)",
)
async def block_invoice(
    invoice_id: str, runtime: Runtime, principal: Tenant, actor: Acting, body: BlockIn | None = None
) -> Any:
    body = body or BlockIn()
    async with runtime.sessions() as session, session.begin():
        engine = _engine(runtime, session, actor)
        case = (await engine.load(principal.tenant_id, [invoice_id])).get(invoice_id)
        if case is None:
            raise HTTPException(404, f"no invoice {invoice_id}")
        end = await _block_end(engine, principal.tenant_id, case.customer_id, body)
        if (refused := _until_refused(end, engine.now)) is not None:
            return refused
        await engine.set_invoice_block(principal.tenant_id, invoice_id, body.reason, end)
    return {"invoice_id": invoice_id, "blocked": True, "reason": body.reason, "until": _iso(end)}


async def _block_end(engine: Engine, tenant: str, customer_id: str, body: BlockIn) -> datetime | None:
    if body.until is None:
        return None
    return block_end(body.until, (await engine.debtor(tenant, customer_id)).time_zone)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


@router.delete(
    "/invoices/{invoice_id}/dunning-block",
    tags=["blocks"],
    response_model=InvoiceBlock,
    summary="Resume dunning of one invoice",
)
async def unblock_invoice(invoice_id: str, runtime: Runtime, principal: Tenant, actor: Acting) -> Any:
    async with runtime.sessions() as session, session.begin():
        if not await _engine(runtime, session, actor).clear_invoice_block(principal.tenant_id, invoice_id):
            raise HTTPException(404, f"no invoice {invoice_id}")
    return {"invoice_id": invoice_id, "blocked": False}


# ---------------------------------------------------------------- timelines, case state, preview


async def _timeline(
    runtime: EngineRuntime,
    tenant: str,
    column: Literal["invoice_id", "customer_id"],
    value: str,
    limit: int,
    cursor: str | None,
) -> Any:
    async def load() -> Any:
        async with runtime.sessions() as session:
            return await queries.timeline_page(
                await repo.driver(session), tenant, column, value, limit=limit, cursor=cursor
            )

    # Invoices and customers arrive as ledger events: a miss is "not arrived yet" or "unknown" (dunning_kit.problems).
    what = f"{column.removesuffix('_id')} {value}"
    return await read_projected(runtime, load, what=what, topics=[topics.LEDGER])


@router.get("/invoices/{invoice_id}/timeline", tags=["timeline"], response_model=Page[TimelineEntry],
            description=PAGE_CONTRACT, summary="Every decision about one invoice, oldest first")  # fmt: skip
async def invoice_timeline(
    invoice_id: str, principal: Tenant, runtime: Runtime, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Any:
    return await _timeline(runtime, principal.tenant_id, "invoice_id", invoice_id, limit, cursor)


@router.get("/customers/{customer_id}/timeline", tags=["timeline"], response_model=Page[TimelineEntry],
            description=PAGE_CONTRACT, summary="Every decision about one customer, oldest first")  # fmt: skip
async def customer_timeline(
    customer_id: str, principal: Tenant, runtime: Runtime, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Any:
    return await _timeline(runtime, principal.tenant_id, "customer_id", customer_id, limit, cursor)


@router.get(
    "/invoices/{invoice_id}/dunning",
    tags=["timeline"],
    response_model=DunningState,
    summary="The invoice's dunning state right now",
)
async def invoice_state(invoice_id: str, principal: Tenant, runtime: Runtime) -> dict[str, Any]:
    async def load() -> Any:
        async with runtime.sessions() as session:
            apg = await repo.driver(session)
            found = (await repo.load_cases(apg, principal.tenant_id, [invoice_id], lock=False)).get(invoice_id)
            block = await repo.customer_block(apg, principal.tenant_id, found.customer_id) if found else None
        return (found, block) if found else None

    case, block = await read_projected(runtime, load, what=f"invoice {invoice_id}", topics=[topics.LEDGER])
    customer_until = block["block_until"] if block is not None and block["blocked"] else None
    return {
        "block_reason": case.block_reason, "block_until": _iso(case.block_until),
        "customer_block_until": _iso(customer_until),
        "invoice_id": case.invoice_id, "customer_id": case.customer_id, "status": case.status,
        "paused_by": case.pause_reasons, "policy_id": case.policy_id, "policy_version": case.policy_version,
        "next_step": case.next_step, "next_at": case.next_at.isoformat() if case.next_at else None,
        "done_steps": case.done_steps, "balance": str(case.balance), "currency": case.currency,
        "closed_reason": case.closed_reason, "closure": case.closure,
    }  # fmt: skip


@router.get(
    "/preview",
    tags=["preview"],
    response_model=PreviewOut,
    summary="Dry run: every step that would go out in [from, to)",
)
async def preview(
    runtime: Runtime,
    principal: Tenant,
    from_: AwareDatetime = Query(alias="from", description="Window start (ISO 8601 with offset)"),
    to: AwareDatetime = Query(description="Window end (exclusive)"),
) -> dict[str, Any]:
    if to <= from_:
        return invalid_input([FieldError("to", "must be after from", "query")])  # type: ignore[return-value]
    objects = runtime.objects
    async with runtime.sessions() as session:
        return await run_preview(
            await repo.driver(session), objects.book, objects.config, principal.tenant_id, from_, to,
            runtime.clock.now(), runtime.settings.preview_max_cases,
        )  # fmt: skip


# A draft is previewed twice (with and without it): a window of at most three months keeps that bounded.
DRAFT_PREVIEW_MAX_DAYS = 92


@router.post(
    "/policies/{policy_id}/preview",
    tags=["policies"],
    response_model=DraftPreviewOut,
    openapi_extra=POLICY_BODY,
    summary="Dry run of a draft version: what publishing it would change in [from, to) (nothing stored)",
)
async def preview_draft(
    policy_id: str,
    request: Request,
    runtime: Runtime,
    principal: Admin,
    from_: AwareDatetime = Query(alias="from", description="Window start (ISO 8601 with offset)"),
    to: AwareDatetime = Query(description=f"Window end (exclusive; at most {DRAFT_PREVIEW_MAX_DAYS} days after from)"),
) -> Any:
    if to <= from_:
        return invalid_input([FieldError("to", "must be after from", "query")])
    if to - from_ > timedelta(days=DRAFT_PREVIEW_MAX_DAYS):
        return invalid_input([FieldError("to", f"at most {DRAFT_PREVIEW_MAX_DAYS} days after from", "query")])
    try:
        doc = await _policy_body(request, path_id=policy_id)
    except InvalidPolicy as exc:
        return _invalid(exc.errors)
    objects = runtime.objects
    async with runtime.sessions() as session:
        apg = await repo.driver(session)
        in_force = (await objects.book.for_tenant(apg, principal.tenant_id)).get(policy_id)
        draft = Policy(doc, version=in_force.version + 1 if in_force is not None else 1)
        return await compare_draft(
            apg, objects.book, objects.config, principal.tenant_id, draft, from_, to, runtime.clock.now(),
            runtime.settings.preview_max_cases,
        )  # fmt: skip


# ---------------------------------------------------------------- ledger freshness


@router.get(
    "/ledger-freshness",
    tags=["freshness"],
    response_model=LedgerFreshness,
    summary="Whether the tenant's ledger is fresh enough to dun on",
)
async def get_ledger_freshness(runtime: Runtime, principal: Tenant) -> dict[str, Any]:
    return await _freshness_report(runtime, principal.tenant_id)


async def _freshness_report(runtime: EngineRuntime, tenant: str) -> dict[str, Any]:
    async with runtime.sessions() as session:
        return await freshness.report(
            await repo.driver(session), tenant, runtime.clock.now(),
            runtime.objects.config.stale_after,
        )  # fmt: skip


@router.put(
    "/ledger-freshness/import-cadence", tags=["freshness"], response_model=LedgerFreshness,
    summary="Declare how often the tenant's imports arrive (file imports and API pushes are otherwise never stale)",
)  # fmt: skip
async def put_import_cadence(body: ImportCadenceIn, runtime: Runtime, principal: Admin) -> dict[str, Any]:
    return await _set_import_cadence(runtime, principal.tenant_id, body.expected_every_hours)


@router.delete(
    "/ledger-freshness/import-cadence",
    tags=["freshness"],
    response_model=LedgerFreshness,
    summary="Drop the declared import cadence",
)
async def delete_import_cadence(runtime: Runtime, principal: Admin) -> dict[str, Any]:
    return await _set_import_cadence(runtime, principal.tenant_id, None)


async def _set_import_cadence(runtime: EngineRuntime, tenant: str, hours: int | None) -> dict[str, Any]:
    async with runtime.sessions() as session, session.begin():
        await _engine(runtime, session).set_import_cadence(tenant, hours)
    return await _freshness_report(runtime, tenant)
