"""Composition root of promise-tracker."""

from __future__ import annotations

from fastapi import FastAPI

from dunning_events import topics
from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.runtime import ServiceRuntime
from promise_tracker.adapters import orm
from promise_tracker.service_layer.handlers import project_ledger
from promise_tracker.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]

LEDGER_GROUP = "promise-tracker.ledger"


def build_runtime(settings: Settings, clock: Clock) -> ServiceRuntime:
    runtime = ServiceRuntime(
        name="promise-tracker", settings=settings, clock=clock, metadata=orm.metadata, schema=orm.SCHEMA
    )
    runtime.add_consumer(LEDGER_GROUP, [topics.LEDGER], project_ledger)
    return runtime


def create_app(runtime: ServiceRuntime) -> FastAPI:
    return create_service_app(
        runtime,
        title="promise-tracker",
        description="Promises-to-pay and payment plans.",
        routers=[],
    )
