"""policy-engine API v1: policies and their versions, assignments, dunning blocks, timelines, the preview.

Policies and assignments need an admin-scoped key; blocks, timelines and the preview a tenant key.
Another tenant's invoice or customer is 404, like one that does not exist.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dunning_events import topics
from dunning_kit.auth import Admin, Tenant
from dunning_kit.idempotency import Idempotent
from dunning_kit.input_guard import unstorable_values
from dunning_kit.problems import FieldError, invalid_input, read_projected
from dunning_kit.runtime import ServiceRuntime
from policy_engine.adapters import repository as repo
from policy_engine.domain.policy import (
    InvalidPolicy,
    PolicyError,
    parse_policy_text,
    validate_policy,
)
from policy_engine.service_layer import freshness, policy_admin
from policy_engine.service_layer.handlers import Engine
from policy_engine.service_layer.preview import preview as run_preview

router = APIRouter(prefix="/v1")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BlockIn(_In):
    reason: str | None = Field(None, max_length=500, description="Why dunning is blocked (shown in the timeline)")


class AssignmentIn(_In):
    policy_id: str = Field(min_length=1, max_length=80)


class ImportCadenceIn(_In):
    expected_every_hours: int = Field(
        ge=1, le=24 * 366, description="An import (or API push) must arrive at least this often, else dunning pauses"
    )


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


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


@router.post("/policies/validate", tags=["policies"], summary="Validate a policy (JSON or YAML) without storing it")
async def validate(request: Request, principal: Admin) -> Any:
    try:
        doc = await _policy_body(request)
    except InvalidPolicy as exc:
        return _invalid(exc.errors)
    return {"valid": True, "policy": doc.model_dump(mode="json")}


@router.post("/policies", status_code=201, tags=["policies"], summary="Create a policy (version 1)",
             dependencies=[Idempotent])  # fmt: skip
async def create_policy(request: Request, principal: Admin) -> Any:
    try:
        doc = await _policy_body(request)
    except InvalidPolicy as exc:
        return _invalid(exc.errors)
    return await _publish(request, principal.tenant_id, doc, must_be_new=True)


@router.put("/policies/{policy_id}", tags=["policies"], summary="Publish a new version of a policy",
            dependencies=[Idempotent])  # fmt: skip
async def put_policy(policy_id: str, request: Request, principal: Admin) -> Any:
    try:
        doc = await _policy_body(request, policy_id)
    except InvalidPolicy as exc:
        return _invalid(exc.errors)
    return await _publish(request, principal.tenant_id, doc, must_be_new=False)


async def _publish(request: Request, tenant: str, doc: Any, *, must_be_new: bool) -> Any:
    runtime = _runtime(request)
    async with runtime.sessions() as session, session.begin():
        apg = await repo.driver(session)
        try:
            version, replanned = await policy_admin.publish(
                apg, tenant, doc, runtime.clock.now(), must_be_new=must_be_new
            )
        except policy_admin.PolicyConflict as exc:
            raise HTTPException(409, str(exc)) from None
    body = {**doc.model_dump(mode="json"), "version": version, "open_cases_replanned": replanned}
    return JSONResponse(body, status_code=201 if version == 1 or must_be_new else 200)


@router.get("/policies", tags=["policies"], summary="Every policy in force, at its current version")
async def list_policies(request: Request, principal: Admin) -> dict[str, Any]:
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        book = runtime.extras["book"]  # type: ignore[attr-defined]
        current = await book.for_tenant(await repo.driver(session), principal.tenant_id)
    return {"policies": [p.to_json() for p in sorted(current.values(), key=lambda p: (p.doc.priority, p.id))]}


@router.get("/policies/{policy_id}", tags=["policies"], summary="A policy at its current version")
async def get_policy(policy_id: str, request: Request, principal: Admin) -> dict[str, Any]:
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        book = runtime.extras["book"]  # type: ignore[attr-defined]
        current = await book.for_tenant(await repo.driver(session), principal.tenant_id)
    if policy_id not in current:
        raise HTTPException(404, f"no policy {policy_id}")
    return current[policy_id].to_json()  # type: ignore[no-any-return]


@router.get("/policies/{policy_id}/versions", tags=["policies"], summary="Every version of a policy")
async def list_versions(policy_id: str, request: Request, principal: Admin) -> dict[str, Any]:
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        found = await policy_admin.versions(await repo.driver(session), principal.tenant_id, policy_id)
    if not found:
        raise HTTPException(404, f"no policy {policy_id}")
    return {"policy_id": policy_id, "versions": found}


@router.get("/policies/{policy_id}/versions/{version}", tags=["policies"], summary="One version of a policy")
async def get_version(policy_id: str, version: int, request: Request, principal: Admin) -> dict[str, Any]:
    found = await list_versions(policy_id, request, principal)
    for v in found["versions"]:
        if v["version"] == version:
            return v  # type: ignore[no-any-return]
    raise HTTPException(404, f"policy {policy_id} has no version {version}")


@router.delete("/policies/{policy_id}", status_code=200, tags=["policies"], summary="Retire a policy")
async def delete_policy(policy_id: str, request: Request, principal: Admin) -> dict[str, Any]:
    runtime = _runtime(request)
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


async def _assign(request: Request, tenant: str, scope: str, target: str, policy_id: str | None) -> dict[str, Any]:
    runtime = _runtime(request)
    async with runtime.sessions() as session, session.begin():
        apg = await repo.driver(session)
        if policy_id is not None:
            book = runtime.extras["book"]  # type: ignore[attr-defined]
            if policy_id not in await book.for_tenant(apg, tenant):
                return invalid_input([FieldError("policy_id", f"no policy {policy_id}")])  # type: ignore[return-value]
        replanned = await policy_admin.assign(apg, tenant, scope, target, policy_id, runtime.clock.now())
    return {"scope": scope, "target": target, "policy_id": policy_id, "open_cases_replanned": replanned}


@router.put("/assignments/customers/{customer_id}", tags=["assignments"], summary="Assign a policy to a customer")
async def assign_customer(customer_id: str, body: AssignmentIn, request: Request, principal: Admin) -> Any:
    return await _assign(request, principal.tenant_id, "customer", customer_id, body.policy_id)


@router.delete("/assignments/customers/{customer_id}", tags=["assignments"], summary="Remove a customer's assignment")
async def unassign_customer(customer_id: str, request: Request, principal: Admin) -> Any:
    return await _assign(request, principal.tenant_id, "customer", customer_id, None)


@router.put("/assignments/segments/{segment}", tags=["assignments"], summary="Assign a policy to a segment")
async def assign_segment(segment: str, body: AssignmentIn, request: Request, principal: Admin) -> Any:
    return await _assign(request, principal.tenant_id, "segment", segment, body.policy_id)


@router.delete("/assignments/segments/{segment}", tags=["assignments"], summary="Remove a segment's assignment")
async def unassign_segment(segment: str, request: Request, principal: Admin) -> Any:
    return await _assign(request, principal.tenant_id, "segment", segment, None)


@router.get("/assignments", tags=["assignments"], summary="Every policy assignment")
async def list_assignments(request: Request, principal: Admin) -> dict[str, Any]:
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        rows = await (await repo.driver(session)).fetch(
            "SELECT scope, target, policy_id, assigned_at FROM policy_assignments WHERE tenant_id = $1 "
            "ORDER BY scope, target",
            principal.tenant_id,
        )
    return {
        "assignments": [
            {"scope": r["scope"], "target": r["target"], "policy_id": r["policy_id"],
             "assigned_at": r["assigned_at"].isoformat()}
            for r in rows
        ]
    }  # fmt: skip


# ---------------------------------------------------------------- dunning blocks


def _engine(request: Request, session: Any) -> Engine:
    runtime = _runtime(request)
    extras = runtime.extras  # type: ignore[attr-defined]
    return Engine(session, runtime.outbox, runtime.clock, extras["config"], extras["book"])


async def _customer_known(session: Any, tenant: str, customer_id: str) -> bool:
    apg = await repo.driver(session)
    return bool(
        await apg.fetchval(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE tenant_id = $1 AND customer_id = $2) OR "
            "EXISTS (SELECT 1 FROM cases WHERE tenant_id = $1 AND customer_id = $2)",
            tenant,
            customer_id,
        )
    )


@router.put("/customers/{customer_id}/dunning-block", tags=["blocks"], summary="Pause all dunning of a customer")
async def block_customer(customer_id: str, request: Request, principal: Tenant, body: BlockIn | None = None) -> Any:
    async with _runtime(request).sessions() as session, session.begin():
        if not await _customer_known(session, principal.tenant_id, customer_id):
            raise HTTPException(404, f"no customer {customer_id}")
        await _engine(request, session).set_customer_block(
            principal.tenant_id, customer_id, body.reason if body else None
        )
    return {"customer_id": customer_id, "blocked": True, "reason": body.reason if body else None}


@router.delete("/customers/{customer_id}/dunning-block", tags=["blocks"], summary="Resume dunning of a customer")
async def unblock_customer(customer_id: str, request: Request, principal: Tenant) -> Any:
    async with _runtime(request).sessions() as session, session.begin():
        if not await _customer_known(session, principal.tenant_id, customer_id):
            raise HTTPException(404, f"no customer {customer_id}")
        await _engine(request, session).clear_customer_block(principal.tenant_id, customer_id)
    return {"customer_id": customer_id, "blocked": False}


@router.put("/invoices/{invoice_id}/dunning-block", tags=["blocks"], summary="Pause dunning of one invoice")
async def block_invoice(invoice_id: str, request: Request, principal: Tenant, body: BlockIn | None = None) -> Any:
    async with _runtime(request).sessions() as session, session.begin():
        if not await _engine(request, session).set_invoice_block(
            principal.tenant_id, invoice_id, body.reason if body else None
        ):
            raise HTTPException(404, f"no invoice {invoice_id}")
    return {"invoice_id": invoice_id, "blocked": True, "reason": body.reason if body else None}


@router.delete("/invoices/{invoice_id}/dunning-block", tags=["blocks"], summary="Resume dunning of one invoice")
async def unblock_invoice(invoice_id: str, request: Request, principal: Tenant) -> Any:
    async with _runtime(request).sessions() as session, session.begin():
        if not await _engine(request, session).clear_invoice_block(principal.tenant_id, invoice_id):
            raise HTTPException(404, f"no invoice {invoice_id}")
    return {"invoice_id": invoice_id, "blocked": False}


# ---------------------------------------------------------------- timelines, case state, preview


async def _timeline(request: Request, tenant: str, column: str, value: str) -> dict[str, Any]:
    async def load() -> dict[str, Any] | None:
        async with _runtime(request).sessions() as session:
            apg = await repo.driver(session)
            rows = await apg.fetch(
                f"SELECT at, kind, step_name, invoice_id, reason, detail::text AS detail FROM timeline "
                f"WHERE tenant_id = $1 AND {column} = $2 ORDER BY id",
                tenant,
                value,
            )
            if not rows:
                known = (
                    await _customer_known(session, tenant, value)
                    if column == "customer_id"
                    else await apg.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM cases WHERE tenant_id = $1 AND invoice_id = $2)", tenant, value
                    )
                )
                if not known:
                    return None
        return {
            "entries": [
                {"at": r["at"].isoformat(), "kind": r["kind"], "step": r["step_name"], "invoice_id": r["invoice_id"],
                 "reason": r["reason"], "detail": json.loads(r["detail"])}
                for r in rows
            ]
        }  # fmt: skip

    # Invoices and customers arrive as ledger events: a miss is "not arrived yet" or "unknown" (dunning_kit.problems).
    what = f"{column.removesuffix('_id')} {value}"
    return await read_projected(_runtime(request), load, what=what, topics=[topics.LEDGER])


@router.get("/invoices/{invoice_id}/timeline", tags=["timeline"], summary="Every decision about one invoice")
async def invoice_timeline(invoice_id: str, principal: Tenant, request: Request) -> dict[str, Any]:
    return await _timeline(request, principal.tenant_id, "invoice_id", invoice_id)


@router.get("/customers/{customer_id}/timeline", tags=["timeline"], summary="Every decision about one customer")
async def customer_timeline(customer_id: str, principal: Tenant, request: Request) -> dict[str, Any]:
    return await _timeline(request, principal.tenant_id, "customer_id", customer_id)


@router.get("/invoices/{invoice_id}/dunning", tags=["timeline"], summary="The invoice's dunning state right now")
async def invoice_state(invoice_id: str, principal: Tenant, request: Request) -> dict[str, Any]:
    async def load() -> Any:
        async with _runtime(request).sessions() as session:
            found = await repo.load_cases(await repo.driver(session), principal.tenant_id, [invoice_id], lock=False)
        return found.get(invoice_id)

    case = await read_projected(_runtime(request), load, what=f"invoice {invoice_id}", topics=[topics.LEDGER])
    return {
        "invoice_id": case.invoice_id, "customer_id": case.customer_id, "status": case.status,
        "paused_by": case.pause_reasons, "policy_id": case.policy_id, "policy_version": case.policy_version,
        "next_step": case.next_step, "next_at": case.next_at.isoformat() if case.next_at else None,
        "done_steps": case.done_steps, "balance": str(case.balance), "currency": case.currency,
        "closed_reason": case.closed_reason,
    }  # fmt: skip


@router.get("/preview", tags=["preview"], summary="Dry run: every step that would go out in [from, to)")
async def preview(
    request: Request,
    principal: Tenant,
    from_: AwareDatetime = Query(alias="from", description="Window start (ISO 8601 with offset)"),
    to: AwareDatetime = Query(description="Window end (exclusive)"),
) -> dict[str, Any]:
    if to <= from_:
        return invalid_input([FieldError("to", "must be after from", "query")])  # type: ignore[return-value]
    runtime = _runtime(request)
    extras = runtime.extras  # type: ignore[attr-defined]
    async with runtime.sessions() as session:
        return await run_preview(
            await repo.driver(session), extras["book"], extras["config"], principal.tenant_id, from_, to,
            runtime.clock.now(), runtime.settings.preview_max_cases,  # type: ignore[attr-defined]
        )  # fmt: skip


# ---------------------------------------------------------------- ledger freshness


@router.get("/ledger-freshness", tags=["freshness"], summary="Whether the tenant's ledger is fresh enough to dun on")
async def get_ledger_freshness(request: Request, principal: Tenant) -> dict[str, Any]:
    return await _freshness_report(request, principal.tenant_id)


async def _freshness_report(request: Request, tenant: str) -> dict[str, Any]:
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        return await freshness.report(
            await repo.driver(session), tenant, runtime.clock.now(),
            runtime.extras["config"].stale_after,  # type: ignore[attr-defined]
        )  # fmt: skip


@router.put(
    "/ledger-freshness/import-cadence", tags=["freshness"],
    summary="Declare how often the tenant's imports arrive (file imports and API pushes are otherwise never stale)",
)  # fmt: skip
async def put_import_cadence(body: ImportCadenceIn, request: Request, principal: Admin) -> dict[str, Any]:
    return await _set_import_cadence(request, principal.tenant_id, body.expected_every_hours)


@router.delete("/ledger-freshness/import-cadence", tags=["freshness"], summary="Drop the declared import cadence")
async def delete_import_cadence(request: Request, principal: Admin) -> dict[str, Any]:
    return await _set_import_cadence(request, principal.tenant_id, None)


async def _set_import_cadence(request: Request, tenant: str, hours: int | None) -> dict[str, Any]:
    async with _runtime(request).sessions() as session, session.begin():
        await _engine(request, session).set_import_cadence(tenant, hours)
    return await _freshness_report(request, tenant)
