"""Composition root of ledger-sync: builds the runtime and the app; nothing else constructs adapters."""

from __future__ import annotations

from fastapi import FastAPI

from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.runtime import ServiceRuntime
from ledger_sync.adapters import orm
from ledger_sync.entrypoints.api import router
from ledger_sync.entrypoints.imports_api import router as imports_router
from ledger_sync.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]


def build_runtime(settings: Settings, clock: Clock) -> ServiceRuntime:
    return ServiceRuntime(name="ledger-sync", settings=settings, clock=clock, metadata=orm.metadata, schema=orm.SCHEMA)


def create_app(runtime: ServiceRuntime) -> FastAPI:
    return create_service_app(
        runtime,
        title="ledger-sync",
        description="The canonical ledger: customers, invoices, credit notes, payments and allocations per tenant.",
        routers=[router, imports_router],
    )
