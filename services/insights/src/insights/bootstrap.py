"""Composition root of insights: the stream consumers that build the read model, the backfill, the figures API."""

from __future__ import annotations

from fastapi import FastAPI

from dunning_events import topics
from dunning_events.handler_table import consumer_apply
from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.runtime import ServiceRuntime
from insights.adapters import orm
from insights.entrypoints import activity_api, ar_api, fx_api, portfolio_api
from insights.entrypoints.backfill_api import router as backfill_router
from insights.service_layer.backfill import attach_backfiller
from insights.service_layer.gauges import add_gauge_timer
from insights.service_layer.handlers import HANDLERS, FactBatch, flush_batch
from insights.service_layer.objects import InsightsRuntime
from insights.service_layer.statistics import add_statistics_timer
from insights.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]

# One consumer group per topic, all running the one HANDLERS table: a backlog on one topic (a tenant's import on
# the ledger) does not hold back the others, and each group commits its own offsets. Named after the schema
# (`insights.ledger`, ...), so a second deployment with a schema of its own (a rebuild beside the live one) reads
# the stream for itself instead of taking partitions from the first.
CONSUMER_TOPICS = {"ledger": topics.LEDGER, "steps": topics.STEPS, "notifications": topics.NOTIFICATIONS,
                   "promises": topics.PROMISES}  # fmt: skip


def build_runtime(settings: Settings, clock: Clock) -> InsightsRuntime:
    # insights publishes nothing: it is the reference consumer of the stream.
    runtime: InsightsRuntime = ServiceRuntime(
        name="insights", settings=settings, clock=clock, metadata=orm.metadata, schema=orm.SCHEMA, produces=[]
    )
    add_gauge_timer(runtime)
    add_statistics_timer(runtime)
    for name, topic in CONSUMER_TOPICS.items():
        group = f"{runtime.schema}.{name}"
        apply = consumer_apply(HANDLERS, group=group, context=FactBatch, finish=flush_batch)
        runtime.add_consumer(group, [topic], apply)
    attach_backfiller(runtime)
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
            backfill_router,
        ],
    )
