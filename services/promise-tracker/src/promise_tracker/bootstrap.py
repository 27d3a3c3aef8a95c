"""Composition root of promise-tracker: the ledger consumer, the deadline timer, the API and the pages."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import FastAPI

from dunning_events import topics
from dunning_events.handler_table import consumer_apply
from dunning_kit import event_export
from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.personal_data import personal_data_router
from dunning_kit.request_limits import RouteLimits
from dunning_kit.runtime import ServiceRuntime
from promise_tracker.adapters import orm
from promise_tracker.adapters.outbox import SetwiseOutboxWriter
from promise_tracker.entrypoints.api import router as api_router
from promise_tracker.entrypoints.self_service import router as self_service_router
from promise_tracker.service_layer import deadlines, personal_data
from promise_tracker.service_layer.matching import HANDLERS, Matcher, flush_outcomes
from promise_tracker.service_layer.objects import TrackerRuntime
from promise_tracker.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]

LEDGER_GROUP = "promise-tracker.ledger"
DEADLINE_TIMER = "promise-deadlines"
DRAIN_BATCHES = 8  # per worker and call of the timer; the timer loop calls again at once while work is left


def build_runtime(settings: Settings, clock: Clock) -> TrackerRuntime:
    runtime: TrackerRuntime = ServiceRuntime(
        name="promise-tracker",
        settings=settings,
        clock=clock,
        metadata=orm.metadata,
        schema=orm.SCHEMA,
        produces=[topics.PROMISES],
    )
    # The deadline timer writes its events set-wise (one statement per batch): the runtime's writer is that one.
    outbox = SetwiseOutboxWriter(runtime.outbox_table, on_commit=runtime.relay.wake)
    runtime.outbox = outbox
    apply = consumer_apply(
        HANDLERS,
        group=LEDGER_GROUP,
        context=lambda session: Matcher(session, outbox, clock.now()),
        finish=flush_outcomes,
    )
    runtime.add_consumer(LEDGER_GROUP, [topics.LEDGER], apply)

    async def fire_batch(now: datetime) -> int:
        async with runtime.sessions() as session, session.begin():
            return await deadlines.fire_due(session, outbox, now, settings.timer_batch_size)

    async def drain(now: datetime) -> int:
        total = 0
        for _ in range(DRAIN_BATCHES):  # bounded, so stopping the service never waits on a long burst
            fired = await fire_batch(now)
            total += fired
            if fired < settings.timer_batch_size:  # a short batch: nothing more was due and unclaimed
                break
        return total

    async def fire_due(now: datetime) -> int:
        # Several workers claim batches at once (SKIP LOCKED keeps them disjoint), each until it finds
        # no full batch left, so a burst of deadlines (one time zone's midnight) keeps PostgreSQL busy on
        # every core without a barrier after each round of batches.
        return sum(await asyncio.gather(*(drain(now) for _ in range(settings.promise_deadline_workers))))

    async def due_stats(now: datetime) -> tuple[int, float]:
        async with runtime.sessions() as session:
            return await deadlines.due_stats(session, now)

    runtime.add_timer(DEADLINE_TIMER, fire_due, due_stats)
    return runtime


def create_app(runtime: TrackerRuntime) -> FastAPI:
    return create_service_app(
        runtime,
        title="promise-tracker",
        description="Promises-to-pay and payment plans: recording, matching, deadlines, self-service.",
        routers=[
            api_router,
            self_service_router,
            personal_data_router("promise-tracker", personal_data.collect),
            event_export.router,
        ],
        limits=[
            RouteLimits("/self-service", rate_per_minute=runtime.settings.rate_limit_pages_per_minute, group="pages")
        ],
    )
