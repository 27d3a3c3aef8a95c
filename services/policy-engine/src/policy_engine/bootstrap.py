"""Composition root of the policy engine: consumers, the durable timer, the API."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import FastAPI

from dunning_events import topics
from dunning_events.handler_table import consumer_apply
from dunning_kit import event_export
from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.personal_data import personal_data_router
from dunning_kit.runtime import ServiceRuntime
from policy_engine.adapters import orm
from policy_engine.entrypoints.api import router
from policy_engine.entrypoints.calls_api import router as calls_router
from policy_engine.entrypoints.handoffs_api import router as handoffs_router
from policy_engine.entrypoints.notes_api import router as notes_router
from policy_engine.entrypoints.reminders_api import router as reminders_router
from policy_engine.service_layer import personal_data
from policy_engine.service_layer.block_ends import block_end_stats, end_due_blocks
from policy_engine.service_layer.firing import due_stats, fire_due
from policy_engine.service_layer.handlers import HANDLERS, Engine, EngineConfig, commuting_layers, note_trace
from policy_engine.service_layer.objects import EngineObjects, EngineRuntime
from policy_engine.service_layer.policy_book import PolicyBook
from policy_engine.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]

LEDGER_GROUP = "policy-engine.ledger"
PROMISES_GROUP = "policy-engine.promises"
NOTIFICATIONS_GROUP = "policy-engine.notifications"


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        stale_after=timedelta(hours=settings.stale_ledger_after_hours),
        recall_window=timedelta(hours=settings.recall_window_hours),
    )


BLOCK_END_POLL_SECONDS = 5.0


def build_runtime(settings: Settings, clock: Clock) -> EngineRuntime:
    runtime: EngineRuntime = ServiceRuntime(
        name="policy-engine",
        settings=settings,
        clock=clock,
        metadata=orm.metadata,
        schema=orm.SCHEMA,
        produces=[topics.STEPS],
    )
    config = engine_config(settings)
    book = PolicyBook()
    runtime.objects = EngineObjects(config=config, book=book)
    outbox = runtime.outbox
    for group, topic in (
        (LEDGER_GROUP, topics.LEDGER),
        (PROMISES_GROUP, topics.PROMISES),
        (NOTIFICATIONS_GROUP, topics.NOTIFICATIONS),
    ):
        # One table for the three groups: each receives only its topic's events. Events of different customers
        # commute, so a batch is applied in layers (commuting_layers), each bulk type set-wise once per layer.
        apply = consumer_apply(
            HANDLERS,
            group=group,
            context=lambda session: Engine(session, outbox, clock, config, book),
            layers=commuting_layers,
            in_span=note_trace,
        )
        consumer = runtime.add_consumer(group, [topic], apply)
        # A payment must stop dunning at once: fetch with a short wait rather than the kit's default.
        consumer.poll_timeout_ms = settings.consumer_fetch_wait_ms

    async def fire(now: datetime) -> int:
        async with runtime.sessions() as session, session.begin():
            return await fire_due(session, runtime.outbox, config, book, now, settings.timer_batch_size)

    async def stats(now: datetime) -> tuple[int, float]:
        async with runtime.sessions() as session:
            return await due_stats(session, now)

    # Several loops overlap one batch's database round trips with another's decisions; the per-customer
    # claim keeps them (and other replicas) on disjoint customers.
    runtime.add_timer("dunning-steps", fire, stats, workers=settings.step_timer_workers)

    async def end_blocks(now: datetime) -> int:
        async with runtime.sessions() as session, session.begin():
            return await end_due_blocks(session, runtime.outbox, clock, config, book, now, settings.timer_batch_size)

    async def block_stats(now: datetime) -> tuple[int, float]:
        async with runtime.sessions() as session:
            return await block_end_stats(session, now)

    # Blocks with an end (PUT dunning-block {until}) lift by themselves: a timer of their own (block_ends). Ends are
    # set in days, so it looks every few seconds, not at the step timer's pace: its idle rounds cost the step
    # timer's decisions (measured: ~10% of policy_decisions_per_s at TIMER_POLL_INTERVAL).
    runtime.add_timer(
        "dunning-block-ends",
        end_blocks,
        block_stats,
        poll_interval=max(settings.timer_poll_interval, BLOCK_END_POLL_SECONDS),
    )
    return runtime


def create_app(runtime: EngineRuntime) -> FastAPI:
    return create_service_app(
        runtime,
        title="policy-engine",
        description="Dunning policies, durable timers, the rules that decide who is contacted, when, how and why, "
        "and the decision timeline.",
        routers=[
            router,
            calls_router,
            reminders_router,
            notes_router,
            handoffs_router,
            personal_data_router("policy-engine", personal_data.collect),
            event_export.router,
        ],
    )
