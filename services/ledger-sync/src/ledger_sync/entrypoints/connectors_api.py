"""Connector administration (admin key), quarantine and drift (tenant key), and the ERP webhook endpoints.

Webhooks carry no API key: the ERP's signature is the authentication. A forged one gets 401 and
nothing is written; a good one is stored and acknowledged at once, and applied by a timer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dunning_kit.auth import Admin, Tenant
from dunning_kit.data_keys import UndecryptableSecret
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, Limit, Page
from dunning_kit.problems import Problem
from ledger_sync.adapters.credentials import TABLE as CREDENTIALS_TABLE
from ledger_sync.connectors.base import SignatureError
from ledger_sync.connectors.registry import FACTORIES, RECEIVERS, URL_SETTINGS
from ledger_sync.entrypoints.deps import Runtime, Sync
from ledger_sync.entrypoints.problems import error
from ledger_sync.entrypoints.schemas import ConnectorConfigured, ConnectorOut, DriftOut, QuarantinedOut, SyncOutcomeOut
from ledger_sync.service_layer import connections
from ledger_sync.service_layer.ledger import NotFound
from ledger_sync.service_layer.objects import LedgerRuntime
from ledger_sync.service_layer.sync import SyncOutcome, SyncService

log = logging.getLogger("ledger_sync.webhooks")
router = APIRouter(prefix="/v1/connectors", tags=["connectors"])
webhooks = APIRouter(prefix="/webhooks", tags=["webhooks"])

SECRET_KEYS = ("client_secret", "refresh_token", "access_token", "api_key", "webhook_secret",
               "token_secret", "consumer_secret")  # fmt: skip


_A_YEAR_S = 366 * 86_400

RUN_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "Another run of this connector is in progress", "model": SyncOutcomeOut},
    502: {"description": "The ERP failed the run (`error` says how)", "model": SyncOutcomeOut},
}


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_account: str | None = Field(None, description="The ERP's id of the company: QBO realmId, Xero tenantId")
    config: dict[str, Any] = Field(default_factory=dict, description="Non-secret settings (base_url, client_id, ...)")
    credentials: dict[str, Any] = Field(default_factory=dict, description="Secrets and tokens; never returned")
    enabled: bool = Field(True, description="Scheduled syncs and reconciliations run only while enabled")
    # Upper bounds: the columns are 32-bit and a due time must stay a datetime (a year is plenty for both).
    sync_interval_s: int = Field(
        900, ge=60, le=_A_YEAR_S, description="Seconds between two scheduled incremental syncs"
    )
    reconcile_interval_s: int = Field(
        86_400, ge=300, le=_A_YEAR_S,
        description="Seconds between two reconciliations (every open invoice re-read from the ERP)",
    )  # fmt: skip
    first_sync_in_s: int | None = Field(
        None, ge=0, le=_A_YEAR_S,
        description="Seconds until the first scheduled sync: 0 = at once; omitted = one sync_interval_s",
    )  # fmt: skip


def _unknown(name: str) -> JSONResponse:
    return error(404, "not found", "connector", f"no connector {name!r} (known: {', '.join(sorted(FACTORIES))})")


def _refused_target(sync: SyncService, config: dict[str, Any]) -> JSONResponse | None:
    """422 for a base_url/token_url the service must not call (an internal address); checked again on connect."""
    egress = sync.egress
    for key in URL_SETTINGS:
        value = config.get(key)
        if value is None:
            continue
        reason = egress.refusal_for_url(value) if isinstance(value, str) else "must be a URL (a string)"
        if reason:
            return error(422, "validation failed", f"config.{key}", reason)
    return None


def _account_taken(name: str, account: str) -> Problem:
    # Which tenant holds it is not said: that would tell one tenant about another.
    return Problem(
        409,
        "External account already connected",
        f"the {name} account {account!r} is connected to another tenant; an ERP company feeds one tenant "
        "(its webhooks are routed by this id)",
        type="urn:dunning:problem:external-account-taken",
        field="external_account",
        connector=name,
    )


@router.put(
    "/{name}",
    response_model=ConnectorConfigured,
    summary="Configure a tenant's connector (admin key)",
    responses={409: {"description": "The external account (realm, Xero tenant, ...) belongs to another tenant"}},
)
async def configure(name: str, body: ConnectionIn, principal: Admin, runtime: Runtime, sync: Sync) -> Any:
    if name not in FACTORIES:
        return _unknown(name)
    refused = _refused_target(sync, body.config)
    if refused is not None:
        return refused
    settings = connections.ConnectionSettings(
        external_account=body.external_account,
        config=body.config,
        sealed_credentials=sync.seal(principal.tenant_id, name, body.credentials),  # encrypted at rest
        enabled=body.enabled,
        sync_interval_s=body.sync_interval_s,
        reconcile_interval_s=body.reconcile_interval_s,
        first_sync_in_s=body.first_sync_in_s,
    )
    try:
        await connections.configure(
            runtime.sessions, runtime.outbox, runtime.clock, principal.tenant_id, name, settings
        )
    except connections.ExternalAccountTaken:
        assert body.external_account is not None  # only a named account can be taken
        raise _account_taken(name, body.external_account) from None
    sync.secrets.replaced(CREDENTIALS_TABLE, principal.tenant_id, name)  # new credentials cure old faults
    return ConnectorConfigured(connector=name, enabled=body.enabled)


@router.get("", response_model=Page[ConnectorOut], description=PAGE_CONTRACT,
            summary="The tenant's connectors, their cursors and freshness (no secrets)")  # fmt: skip
async def list_connectors(
    principal: Admin, runtime: Runtime, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Any:
    async with runtime.sessions() as session:
        return await connections.list_connections(session, principal.tenant_id, limit=limit, cursor=cursor)


def _answer(outcome: SyncOutcome) -> Any:
    """The outcome, or the problem it is: 409 when a run of this connector holds its lock, 502 when the ERP
    failed (the outcome's fields ride along as extension members)."""
    if outcome.skipped:
        raise Problem(409, "Sync already running", outcome.error or "a sync of this connector is running",
                      **outcome.as_dict())  # fmt: skip
    if not outcome.succeeded:
        raise Problem(502, "ERP sync failed", outcome.error or "the ERP did not answer as expected",
                      **outcome.as_dict())  # fmt: skip
    return outcome.as_dict()


async def _run(name: str, run: Callable[[], Awaitable[SyncOutcome]]) -> Any:
    try:
        outcome = await run()
    except NotFound:
        return _unknown(name)
    return _answer(outcome)


@router.post("/{name}/sync", response_model=SyncOutcomeOut, responses=RUN_RESPONSES,
             summary="Run a sync now and wait for it (admin key)")  # fmt: skip
async def sync_now(name: str, principal: Admin, sync: Sync) -> Any:
    return await _run(name, lambda: sync.run_sync(principal.tenant_id, name))


@router.post("/{name}/reconcile", response_model=SyncOutcomeOut, responses=RUN_RESPONSES,
             summary="Compare the ledger with the ERP now and correct drift (admin key)")  # fmt: skip
async def reconcile_now(name: str, principal: Admin, sync: Sync) -> Any:
    return await _run(name, lambda: sync.reconcile(principal.tenant_id, name))


@router.get("/{name}/quarantine", response_model=Page[QuarantinedOut], description=PAGE_CONTRACT,
            summary="ERP records that could not be applied, with their errors")  # fmt: skip
async def quarantined(
    name: str, principal: Tenant, runtime: Runtime, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Any:
    async with runtime.sessions() as session:
        return await connections.quarantined(session, principal.tenant_id, name, limit=limit, cursor=cursor)


@router.get("/{name}/drift", response_model=Page[DriftOut], description=PAGE_CONTRACT,
            summary="Balances that still differ from the ERP after reconciliation")  # fmt: skip
async def drift(
    name: str, principal: Tenant, runtime: Runtime, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Any:
    async with runtime.sessions() as session:
        return await connections.drift(session, principal.tenant_id, name, limit=limit, cursor=cursor)


# ------------------------------------------------------------------------------------------ webhooks


# The ERP's payload is read raw: its signature covers the exact bytes, so it is documented as bytes.
WEBHOOK: dict[str, Any] = {
    "response_class": Response,
    "responses": {200: {"description": "Stored; applied shortly by the webhook timer (empty body)"},
                  401: {"description": "Bad signature (or unknown tenant); nothing stored"}},
    "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "string", "format": "binary", "description": "The ERP's signed notification, as sent"}}}}},
}  # fmt: skip


def _app_secret(runtime: LedgerRuntime, name: str) -> str:
    settings = runtime.settings
    return str(
        {"quickbooks": settings.quickbooks_webhook_verifier_token, "xero": settings.xero_webhook_key}.get(name, "")
    )


async def _receive(
    request: Request, runtime: LedgerRuntime, name: str, secret: str, tenant_id: str | None = None
) -> Response:
    body = await request.body()
    receiver = RECEIVERS[name]
    try:
        receiver.verify(request.headers, body, secret, now=runtime.clock.now())
    except SignatureError as exc:
        log.warning("%s webhook refused: %s", name, exc)
        # The ERPs look at the status only; the body is the platform's problem, saying nothing of why.
        raise Problem(401, "Unauthorized", "the notification's signature does not verify; nothing was stored") from None
    try:
        notices = receiver.notices(body)
    except ValueError as exc:
        return error(400, "malformed webhook", "(body)", str(exc))
    await runtime.objects.sync.store_notices(name, notices, tenant_id)
    return Response(status_code=200)


@webhooks.post(
    "/quickbooks", **WEBHOOK, summary="QuickBooks Online webhooks (legacy and CloudEvents), intuit-signature"
)
async def quickbooks_webhook(request: Request, runtime: Runtime) -> Response:
    return await _receive(request, runtime, "quickbooks", _app_secret(runtime, "quickbooks"))


@webhooks.post("/stripe/{tenant_id}", **WEBHOOK, summary="Stripe webhooks for one tenant's endpoint, Stripe-Signature")
async def stripe_webhook(tenant_id: str, request: Request, runtime: Runtime, sync: Sync) -> Response:
    try:
        conn = await sync.connection(tenant_id, "stripe")
    except UndecryptableSecret:  # logged once and readiness false; Stripe retries a 503 for up to three days
        raise Problem(503, "Service Unavailable", "the endpoint's secret cannot be opened now; retry later") from None
    # An unknown tenant gets the same 401 as a bad signature: nothing to learn by probing.
    secret = str(conn.credentials.get("webhook_secret", "")) if conn else ""
    return await _receive(request, runtime, "stripe", secret, tenant_id=tenant_id if conn else None)


@webhooks.post("/xero", **WEBHOOK, summary="Xero webhooks (and the intent-to-receive probe), x-xero-signature")
async def xero_webhook(request: Request, runtime: Runtime) -> Response:
    return await _receive(request, runtime, "xero", _app_secret(runtime, "xero"))
