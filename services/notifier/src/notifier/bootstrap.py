"""Composition root of the notifier."""

from __future__ import annotations

from fastapi import FastAPI

from dunning_events import topics
from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.runtime import ServiceRuntime
from notifier.adapters import orm
from notifier.adapters.email_smtp import SmtpEmail
from notifier.entrypoints.api import router
from notifier.service_layer.handlers import Dispatcher, make_ledger_projector, make_step_recorder
from notifier.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]

LEDGER_GROUP = "notifier.ledger"
STEPS_GROUP = "notifier.steps"


def build_runtime(settings: Settings, clock: Clock) -> ServiceRuntime:
    runtime = ServiceRuntime(name="notifier", settings=settings, clock=clock, metadata=orm.metadata, schema=orm.SCHEMA)
    runtime.add_consumer(LEDGER_GROUP, [topics.LEDGER], make_ledger_projector(LEDGER_GROUP))
    runtime.add_consumer(STEPS_GROUP, [topics.STEPS], make_step_recorder(clock, STEPS_GROUP))
    email = SmtpEmail(
        settings.smtp_host, settings.smtp_port, settings.email_from, settings.smtp_username, settings.smtp_password,
        settings.smtp_starttls,
    )  # fmt: skip
    dispatcher = Dispatcher(runtime.sessions, runtime.outbox, clock, email, settings.dispatch_batch_size)
    runtime.add_timer("deliveries", dispatcher.dispatch_due, dispatcher.due_stats)
    return runtime


def create_app(runtime: ServiceRuntime) -> FastAPI:
    return create_service_app(
        runtime,
        title="notifier",
        description="Templates, channels, at-most-once delivery and receipts.",
        routers=[router],
    )
