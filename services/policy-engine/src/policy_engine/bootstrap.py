"""Composition root of the policy engine."""

from __future__ import annotations

from datetime import datetime

from fastapi import FastAPI

from dunning_events import topics
from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.runtime import ServiceRuntime
from policy_engine.adapters import orm
from policy_engine.entrypoints.api import router
from policy_engine.service_layer.handlers import Engine, due_stats, make_ledger_handler
from policy_engine.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]

LEDGER_GROUP = "policy-engine.ledger"


def build_runtime(settings: Settings, clock: Clock) -> ServiceRuntime:
    runtime = ServiceRuntime(
        name="policy-engine", settings=settings, clock=clock, metadata=orm.metadata, schema=orm.SCHEMA
    )
    runtime.add_consumer(LEDGER_GROUP, [topics.LEDGER], make_ledger_handler(runtime.outbox, clock, LEDGER_GROUP))

    async def fire_due(now: datetime) -> int:
        async with runtime.sessions() as session, session.begin():
            return await Engine(session, runtime.outbox, clock).fire_due(now, settings.timer_batch_size)

    async def stats(now: datetime) -> tuple[int, float]:
        async with runtime.sessions() as session:
            return await due_stats(session, now)

    runtime.add_timer("dunning-steps", fire_due, stats)
    return runtime


def create_app(runtime: ServiceRuntime) -> FastAPI:
    return create_service_app(
        runtime,
        title="policy-engine",
        description="Dunning policies, durable timers and the decision timeline.",
        routers=[router],
    )
