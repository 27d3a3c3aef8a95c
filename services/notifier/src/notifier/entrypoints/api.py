"""notifier API v1: deliveries (what was sent, to whom, with what outcome), collector tasks, the
suppression list and the tenant's channel configuration."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert

from dunning_kit.auth import Admin, Tenant
from dunning_kit.data_keys import UndecryptableSecret
from dunning_kit.idempotency import Idempotent
from dunning_kit.problems import FieldError, Problem, invalid_input
from notifier.adapters import orm
from notifier.adapters.channel_secrets import TABLE as SECRETS_TABLE
from notifier.domain.recipients import InvalidAddress, normalize_email, normalize_phone
from notifier.domain.tenant_config import TenantConfig
from notifier.entrypoints.deps import jsonable, not_found, notifier_of, runtime_of, unprocessable
from notifier.service_layer.outcomes import add_suppression

router = APIRouter(prefix="/v1")

DeliveryStatus = Literal[
    "pending",
    "claimed",
    "sending",
    "sent",
    "delivered",
    "failed",
    "bounced",
    "skipped",
    "cancelled",
    "unknown",
    "held",
]
_DELIVERY_COLUMNS = (
    "id",
    "customer_id",
    "step_id",
    "channel",
    "status",
    "provider",
    "recipient",
    "template_id",
    "locale",
    "subject",
    "error",
    "attempts",
    "provider_message_id",
    "next_attempt_at",
    "sent_at",
    "created_at",
    "updated_at",
)


def _parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# ---------------------------------------------------------------- deliveries


@router.get("/deliveries", tags=["deliveries"], summary="Deliveries of the tenant, newest first")
async def list_deliveries(
    principal: Tenant,
    request: Request,
    status: DeliveryStatus | None = None,
    customer_id: str | None = None,
    step_id: str | None = None,
    channel: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    d = orm.deliveries.c
    query = select(*(d[c] for c in _DELIVERY_COLUMNS)).where(d.tenant_id == principal.tenant_id)
    for column, value in (("status", status), ("customer_id", customer_id), ("step_id", step_id), ("channel", channel)):
        if value is not None:
            query = query.where(d[column] == value)
    async with runtime_of(request).sessions() as session:
        rows = (await session.execute(query.order_by(d.created_at.desc(), d.id).limit(limit))).mappings().all()
    return {"deliveries": [jsonable(r) for r in rows]}


@router.get("/deliveries/{delivery_id}", tags=["deliveries"], summary="One delivery with its rendered content")
async def get_delivery(principal: Tenant, request: Request, delivery_id: str) -> dict[str, Any]:
    ident = _parse_uuid(delivery_id)
    d = orm.deliveries.c
    async with runtime_of(request).sessions() as session:
        row = None
        if ident is not None:
            row = (
                (
                    await session.execute(
                        select(*(d[c] for c in _DELIVERY_COLUMNS), d.body_text, d.body_html, d.step).where(
                            d.id == ident, d.tenant_id == principal.tenant_id
                        )
                    )
                )
                .mappings()
                .first()
            )
    if row is None:
        raise not_found("delivery")
    return jsonable(row)


# ---------------------------------------------------------------- collector tasks


@router.get(
    "/tasks", tags=["collector tasks"], summary="Work items for collectors (steps the policy gives to a person)"
)
async def list_tasks(
    principal: Tenant,
    request: Request,
    status: Literal["open", "done"] | None = "open",
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    t = orm.collector_tasks.c
    query = select(orm.collector_tasks).where(t.tenant_id == principal.tenant_id)
    if status is not None:
        query = query.where(t.status == status)
    async with runtime_of(request).sessions() as session:
        rows = (await session.execute(query.order_by(t.created_at, t.id).limit(limit))).mappings().all()
    return {"tasks": [jsonable(r) for r in rows]}


class TaskCompletion(BaseModel):
    note: str | None = Field(None, max_length=4000, description="What the collector did or agreed")


@router.post("/tasks/{task_id}/complete", tags=["collector tasks"], summary="Mark a collector task done")
async def complete_task(principal: Tenant, request: Request, task_id: str, body: TaskCompletion) -> dict[str, Any]:
    ident = _parse_uuid(task_id)
    t = orm.collector_tasks.c
    runtime = runtime_of(request)
    async with runtime.sessions() as session, session.begin():
        row = None
        if ident is not None:
            row = (
                (
                    await session.execute(
                        update(orm.collector_tasks)
                        .where(t.id == ident, t.tenant_id == principal.tenant_id)
                        .values(status="done", note=body.note, completed_at=runtime.clock.now())
                        .returning(orm.collector_tasks)
                    )
                )
                .mappings()
                .first()
            )
    if row is None:
        raise not_found("task")
    return jsonable(row)


# ---------------------------------------------------------------- suppression list


@router.get("/suppressions", tags=["opt-outs"], summary="Addresses and numbers that are not contacted")
async def list_suppressions(
    principal: Tenant, request: Request, limit: int = Query(500, ge=1, le=5000)
) -> dict[str, Any]:
    s = orm.suppressions.c
    async with runtime_of(request).sessions() as session:
        rows = (
            (
                await session.execute(
                    select(orm.suppressions)
                    .where(s.tenant_id == principal.tenant_id)
                    .order_by(s.created_at.desc())
                    .limit(limit)
                )
            )
            .mappings()
            .all()
        )
    return {"suppressions": [jsonable(r) for r in rows]}


class SuppressionIn(BaseModel):
    kind: Literal["email", "phone"]
    address: str = Field(min_length=3, max_length=320)
    customer_id: str | None = Field(None, max_length=200)
    detail: str | None = Field(None, max_length=1000)


def _normalised(kind: str, address: str) -> str:
    return normalize_email(address) if kind == "email" else normalize_phone(address)


@router.post(
    "/suppressions",
    tags=["opt-outs"],
    status_code=201,
    summary="Suppress an address (e.g. an opt-out by phone)",
    dependencies=[Idempotent],
)
async def add_manual_suppression(principal: Admin, request: Request, body: SuppressionIn) -> Any:
    try:
        address = _normalised(body.kind, body.address)
    except InvalidAddress as exc:
        return unprocessable([("address", str(exc))])
    runtime = runtime_of(request)
    async with runtime.sessions() as session, session.begin():
        events = await add_suppression(
            session,
            principal.tenant_id,
            body.kind,
            address,
            "manual",
            body.customer_id,
            "email" if body.kind == "email" else "sms",
            body.detail,
            runtime.clock.now(),
        )
        await runtime.outbox.add(session, events)
    return {"kind": body.kind, "address": address, "reason": "manual"}


@router.delete(
    "/suppressions/{kind}/{address}",
    tags=["opt-outs"],
    status_code=204,
    summary="Lift a suppression (the customer consented again)",
)
async def lift_suppression(
    principal: Admin, request: Request, kind: Literal["email", "phone"], address: str
) -> Response:
    try:
        normalised = _normalised(kind, address)
    except InvalidAddress:
        raise not_found("suppression") from None
    s = orm.suppressions.c
    async with runtime_of(request).sessions() as session, session.begin():
        gone = (
            await session.execute(
                delete(orm.suppressions)
                .where(s.tenant_id == principal.tenant_id, s.kind == kind, s.address == normalised)
                .returning(s.address)
            )
        ).first()
    if gone is None:
        raise not_found("suppression")
    return Response(status_code=204)


# ---------------------------------------------------------------- channel configuration


def _public(config: TenantConfig, secret_set: bool) -> dict[str, Any]:
    out = config.model_dump(mode="json")
    if secret_set:
        out["webhook"]["secret"] = "whsec_…(set)"  # never echo a signing secret
    return out


async def _stored_config(request: Request, tenant_id: str) -> dict[str, Any] | None:
    ts = orm.tenant_settings.c
    async with runtime_of(request).sessions() as session:
        return await session.scalar(select(ts.config).where(ts.tenant_id == tenant_id))  # type: ignore[no-any-return]


async def load_config(request: Request, tenant_id: str, *, open_secret: bool = False) -> TenantConfig:
    """The tenant's channel configuration; its webhook signing secret only when asked for (it is decrypted)."""
    raw = await _stored_config(request, tenant_id)
    if not raw:
        return TenantConfig()
    if not open_secret:
        return TenantConfig.model_validate(notifier_of(request).secrets.without_secret(raw))
    try:
        return TenantConfig.model_validate(notifier_of(request).secrets.open(tenant_id, raw))
    except UndecryptableSecret as exc:
        # Never answered as if no secret were set: a PUT with a new secret replaces it and cures this.
        raise Problem(
            503, "Stored secret cannot be decrypted", str(exc), type="urn:dunning:problem:undecryptable-secret",
            field="webhook.secret",
        ) from None  # fmt: skip


@router.get("/channel-config", tags=["configuration"], summary="The tenant's channel configuration")
async def get_channel_config(principal: Tenant, request: Request) -> dict[str, Any]:
    raw = await _stored_config(request, principal.tenant_id) or {}
    config = await load_config(request, principal.tenant_id)
    n = notifier_of(request)
    return {
        **_public(config, secret_set=bool((raw.get("webhook") or {}).get("secret"))),
        "effective": {
            "email_provider": config.email.provider or "smtp",
            "letter_provider": config.letter.provider or n.settings.letter_provider,
            "email_from": config.email.from_address or n.settings.email_from,
            "sms_from": config.sms.from_number or n.settings.twilio_from_number,
        },
    }


@router.put("/channel-config", tags=["configuration"], summary="Replace the tenant's channel configuration (admin)")
async def put_channel_config(principal: Admin, request: Request, body: TenantConfig) -> Any:
    if body.webhook.url is not None:
        # The service POSTs signed reminders there: never to an internal address (checked again on connect).
        reason = notifier_of(request).egress.refusal_for_url(str(body.webhook.url))
        if reason:
            return unprocessable([("webhook.url", reason)])
    stored = body.model_dump(mode="json", exclude_none=True)
    # What is stored must read back: a URL within its length limit can outgrow it once normalised (found by
    # fuzzing), and a stored config that no longer validates would fail every read, preview and send.
    try:
        TenantConfig.model_validate(stored)
    except ValidationError as exc:
        return invalid_input(  # type: ignore[return-value]
            [FieldError(".".join(map(str, e["loc"])), e["msg"], "body") for e in exc.errors(include_url=False)],
            request=request,
        )
    if body.webhook.secret is None:  # keep the secret unless a new one is given (it is never read back)
        current = await load_config(request, principal.tenant_id, open_secret=True)
        if current.webhook.secret:
            stored.setdefault("webhook", {})["secret"] = current.webhook.secret
    runtime = runtime_of(request)
    sealed = notifier_of(request).secrets.seal(principal.tenant_id, stored)  # the signing secret encrypted at rest
    ts = orm.tenant_settings.c
    async with runtime.sessions() as session, session.begin():
        stmt = insert(orm.tenant_settings).values(
            tenant_id=principal.tenant_id, config=sealed, updated_at=runtime.clock.now()
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[ts.tenant_id], set_={"config": sealed, "updated_at": runtime.clock.now()}
            )
        )
    notifier_of(request).secrets.health.replaced(SECRETS_TABLE, principal.tenant_id)  # a new secret cures old faults
    return _public(TenantConfig.model_validate(stored), secret_set=bool(stored.get("webhook", {}).get("secret")))
