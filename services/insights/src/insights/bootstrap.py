"""Composition root of insights: the stream consumers that build the read model, the backfill, the figures API."""

from __future__ import annotations

from fastapi import FastAPI

from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.runtime import ServiceRuntime
from insights.adapters import orm
from insights.entrypoints import activity_api, ar_api, fx_api, portfolio_api
from insights.service_layer.gauges import add_gauge_timer
from insights.service_layer.objects import InsightsRuntime
from insights.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]


def build_runtime(settings: Settings, clock: Clock) -> InsightsRuntime:
    # insights publishes nothing: it is the reference consumer of the stream.
    runtime: InsightsRuntime = ServiceRuntime(
        name="insights", settings=settings, clock=clock, metadata=orm.metadata, schema=orm.SCHEMA, produces=[]
    )
    add_gauge_timer(runtime)
    return runtime


def create_app(runtime: InsightsRuntime) -> FastAPI:
    return create_service_app(
        runtime,
        title="insights",
        description="The accounts-receivable read model: aging, DSO, CEI, ADD, collection, promise, step and "
        "channel figures from the event stream.",
        routers=[
            ar_api.router,
            fx_api.router,
            portfolio_api.router,
            activity_api.router,
        ],
    )
