"""notifier API v1: deliveries (what was sent, to whom, with what outcome), the suppression list and the tenant's
channel configuration (collector tasks: tasks_api.py)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, ValidationError

from dunning_kit.auth import Admin, Tenant
from dunning_kit.data_keys import UndecryptableSecret
from dunning_kit.idempotency import Idempotent
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, Limit, Page
from dunning_kit.problems import FieldError, Problem, invalid_input
from notifier.adapters.channel_secrets import TABLE as SECRETS_TABLE
from notifier.domain.recipients import InvalidAddress, normalize_email, normalize_phone
from notifier.domain.tenant_config import TenantConfig
from notifier.entrypoints.deps import Objects, Runtime, not_found, unprocessable
from notifier.entrypoints.schemas import (
    ChannelConfigOut,
    DeliveryDetail,
    DeliveryOut,
    SuppressionAdded,
    SuppressionOut,
)
from notifier.service_layer import queries
from notifier.service_layer.channel_config import load_config, stored_config
from notifier.service_layer.objects import NotifierRuntime
from notifier.service_layer.suppressions import add_suppression

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


def _parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# ---------------------------------------------------------------- deliveries


@router.get("/deliveries", tags=["deliveries"], response_model=Page[DeliveryOut], description=PAGE_CONTRACT,
            summary="Deliveries of the tenant, newest first")  # fmt: skip
async def list_deliveries(
    principal: Tenant,
    runtime: Runtime,
    status: DeliveryStatus | None = None,
    customer_id: str | None = None,
    step_id: str | None = None,
    channel: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Any:
    filters = {"status": status, "customer_id": customer_id, "step_id": step_id, "channel": channel}
    async with runtime.sessions() as session:
        return await queries.deliveries(session, principal.tenant_id, filters, limit=limit, cursor=cursor)


@router.get("/deliveries/{delivery_id}", tags=["deliveries"], response_model=DeliveryDetail,
            summary="One delivery with its rendered content")  # fmt: skip
async def get_delivery(principal: Tenant, runtime: Runtime, delivery_id: str) -> Any:
    ident = _parse_uuid(delivery_id)
    found = None
    if ident is not None:
        async with runtime.sessions() as session:
            found = await queries.delivery(session, principal.tenant_id, ident)
    if found is None:
        raise not_found("delivery")
    return found


# Collector tasks (the worklist): entrypoints/tasks_api.py.


# ---------------------------------------------------------------- suppression list


@router.get("/suppressions", tags=["opt-outs"], response_model=Page[SuppressionOut], description=PAGE_CONTRACT,
            summary="Addresses and numbers that are not contacted, newest first")  # fmt: skip
async def list_suppressions(
    principal: Tenant, runtime: Runtime, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Any:
    async with runtime.sessions() as session:
        return await queries.suppressions(session, principal.tenant_id, limit=limit, cursor=cursor)


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
    response_model=SuppressionAdded,
    summary="Suppress an address (e.g. an opt-out by phone)",
    dependencies=[Idempotent],
)
async def add_manual_suppression(principal: Admin, runtime: Runtime, body: SuppressionIn) -> Any:
    try:
        address = _normalised(body.kind, body.address)
    except InvalidAddress as exc:
        return unprocessable([("address", str(exc))])
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
    principal: Admin, runtime: Runtime, kind: Literal["email", "phone"], address: str
) -> Response:
    try:
        normalised = _normalised(kind, address)
    except InvalidAddress:
        raise not_found("suppression") from None
    async with runtime.sessions() as session, session.begin():
        lifted = await queries.lift_suppression(session, principal.tenant_id, kind, normalised)
    if not lifted:
        raise not_found("suppression")
    return Response(status_code=204)


# ---------------------------------------------------------------- channel configuration


def _public(config: TenantConfig, secret_set: bool) -> dict[str, Any]:
    out = config.model_dump(mode="json")
    if secret_set:
        out["webhook"]["secret"] = "whsec_…(set)"  # never echo a signing secret
    return out


async def _config_with_secret(runtime: NotifierRuntime, tenant_id: str) -> TenantConfig:
    try:
        return await load_config(runtime, tenant_id, open_secret=True)
    except UndecryptableSecret as exc:
        # Never answered as if no secret were set: a PUT with a new secret replaces it and cures this.
        raise Problem(
            503, "Stored secret cannot be decrypted", str(exc), type="urn:dunning:problem:undecryptable-secret",
            field="webhook.secret",
        ) from None  # fmt: skip


@router.get("/channel-config", tags=["configuration"], response_model=None,
            responses={200: {"model": ChannelConfigOut}}, summary="The tenant's channel configuration")  # fmt: skip
async def get_channel_config(principal: Tenant, runtime: Runtime, notifier: Objects) -> dict[str, Any]:
    raw = await stored_config(runtime, principal.tenant_id) or {}
    config = await load_config(runtime, principal.tenant_id)
    return {
        **_public(config, secret_set=bool((raw.get("webhook") or {}).get("secret"))),
        "effective": {
            "email_provider": config.email.provider or "smtp",
            "letter_provider": config.letter.provider or notifier.settings.letter_provider,
            "email_from": config.email.from_address or notifier.settings.email_from,
            "sms_from": config.sms.from_number or notifier.settings.twilio_from_number,
        },
    }


@router.put("/channel-config", tags=["configuration"], response_model=None,
            responses={200: {"model": TenantConfig, "description": "As stored; a set secret reads `whsec_…(set)`"}},
            summary="Replace the tenant's channel configuration (admin)")  # fmt: skip
async def put_channel_config(
    principal: Admin, request: Request, runtime: Runtime, notifier: Objects, body: TenantConfig
) -> Any:
    if body.webhook.url is not None:
        # The service POSTs signed reminders there: never to an internal address (checked again on connect).
        reason = notifier.egress.refusal_for_url(str(body.webhook.url))
        if reason:
            return unprocessable([("webhook.url", reason)])
    stored = body.model_dump(mode="json", exclude_none=True)
    # What is stored must read back: a URL within its length limit can outgrow it once normalised (found by
    # fuzzing), and a stored config that no longer validates would fail every read, preview and send.
    try:
        TenantConfig.model_validate(stored)
    except ValidationError as exc:
        return invalid_input(
            [FieldError(".".join(map(str, e["loc"])), e["msg"], "body") for e in exc.errors(include_url=False)],
            request=request,
        )
    if body.webhook.secret is None:  # keep the secret unless a new one is given (it is never read back)
        current = await _config_with_secret(runtime, principal.tenant_id)
        if current.webhook.secret:
            stored.setdefault("webhook", {})["secret"] = current.webhook.secret
    sealed = notifier.secrets.seal(principal.tenant_id, stored)  # the signing secret encrypted at rest
    async with runtime.sessions() as session, session.begin():
        await queries.store_config(session, principal.tenant_id, sealed, runtime.clock.now())
    notifier.secrets.health.replaced(SECRETS_TABLE, principal.tenant_id)  # a new secret cures old faults
    return _public(TenantConfig.model_validate(stored), secret_set=bool(stored.get("webhook", {}).get("secret")))
