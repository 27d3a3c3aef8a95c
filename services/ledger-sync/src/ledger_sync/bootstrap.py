"""Composition root of ledger-sync: builds the runtime, the sync machinery and the app."""

from __future__ import annotations

from fastapi import FastAPI

from dunning_events import topics
from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.data_keys import Keyring
from dunning_kit.outbound import OutboundPolicy
from dunning_kit.request_limits import RouteLimits
from dunning_kit.runtime import ServiceRuntime
from ledger_sync.adapters import orm
from ledger_sync.connectors.registry import FACTORIES
from ledger_sync.entrypoints.api import router
from ledger_sync.entrypoints.connectors_api import router as connectors_router
from ledger_sync.entrypoints.connectors_api import webhooks
from ledger_sync.entrypoints.exports_api import router as exports_router
from ledger_sync.entrypoints.imports_api import router as imports_router
from ledger_sync.entrypoints.personal_data_api import router as personal_data_router
from ledger_sync.service_layer.objects import LedgerObjects, LedgerRuntime
from ledger_sync.service_layer.sync import SyncService
from ledger_sync.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]


def build_runtime(settings: Settings, clock: Clock) -> LedgerRuntime:
    keyring = Keyring.from_settings(settings)  # first: a malformed key setting stops the start, naming it
    runtime: LedgerRuntime = ServiceRuntime(
        name="ledger-sync",
        settings=settings,
        clock=clock,
        metadata=orm.metadata,
        schema=orm.SCHEMA,
        produces=[topics.LEDGER],
    )
    sync = SyncService(
        engine=runtime.engine,
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        clock=clock,
        factories=FACTORIES,
        notice_batch=settings.webhook_notice_batch,
        egress=OutboundPolicy(settings.outbound_allowed_networks),
        keyring=keyring,
    )
    runtime.objects = LedgerObjects(sync=sync)
    runtime.add_readiness_check("stored_secrets", sync.secrets.ready)
    # Webhook notices are applied by a durable-timer loop (acknowledged fast, processed asynchronously);
    # scheduled syncs and the daily reconciliation likewise.
    runtime.add_timer("webhook-notices", sync.process_notices, sync.notices_due)
    runtime.add_timer("connector-syncs", sync.fire_due_syncs, sync.syncs_due)
    return runtime


def create_app(runtime: LedgerRuntime) -> FastAPI:
    settings = runtime.settings
    return create_service_app(
        runtime,
        title="ledger-sync",
        description="The canonical ledger: customers, invoices, credit notes, payments and allocations per tenant; "
        "REST API, bulk CSV import, ERP connectors and their webhooks.",
        routers=[router, imports_router, connectors_router, webhooks, personal_data_router, exports_router],
        limits=[
            RouteLimits(
                "/webhooks", max_body_bytes=settings.webhook_max_body_bytes,
                rate_per_minute=settings.rate_limit_webhooks_per_minute, group="webhooks",
            ),
            RouteLimits("/v1/imports", max_body_bytes=settings.import_max_body_bytes),
        ],
    )  # fmt: skip
