"""Composition root of the notifier: settings -> providers, renderer, dispatcher, consumers, routes."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from dunning_events import topics
from dunning_events.handler_table import consumer_apply
from dunning_kit import event_export
from dunning_kit.app import create_service_app
from dunning_kit.clock import Clock
from dunning_kit.data_keys import Keyring
from dunning_kit.outbound import OutboundPolicy
from dunning_kit.personal_data import personal_data_router
from dunning_kit.request_limits import RouteLimits
from dunning_kit.runtime import ServiceRuntime
from notifier.adapters import orm
from notifier.adapters.channel_secrets import ChannelSecrets
from notifier.adapters.channels.http import RateLimiter
from notifier.adapters.channels.letter import DropFolderLetters, PrintApiLetters
from notifier.adapters.channels.sendgrid import SendGridEmail
from notifier.adapters.channels.smtp import SmtpEmail
from notifier.adapters.channels.task import CollectorTasks
from notifier.adapters.channels.twilio import TwilioClient, TwilioSms, TwilioVoice
from notifier.adapters.channels.webhook import SignedWebhooks
from notifier.adapters.ledger_watermark import LedgerWatermark
from notifier.domain.default_templates import PARTIALS
from notifier.domain.rendering import Renderer
from notifier.domain.retry import RetryPolicy
from notifier.entrypoints import api, callbacks, customer_pages, dev, tasks_api, templates_api
from notifier.service_layer import personal_data
from notifier.service_layer.compose import Composer
from notifier.service_layer.dispatcher import Dispatcher, ProviderRegistry
from notifier.service_layer.objects import Notifier, NotifierRuntime
from notifier.service_layer.projections import LEDGER_HANDLERS, record_positions
from notifier.service_layer.retention import MessageRetention
from notifier.service_layer.send_gate import SendGate
from notifier.service_layer.steps import STEP_HANDLERS, StepBatch, note_trace
from notifier.settings import Settings

__all__ = ["Settings", "build_runtime", "create_app"]

LEDGER_GROUP = "notifier.ledger"
STEPS_GROUP = "notifier.steps"


def build_providers(settings: Settings, clock: Clock, runtime: ServiceRuntime) -> ProviderRegistry:
    def today():  # type: ignore[no-untyped-def]
        return clock.now().astimezone(ZoneInfo("UTC")).date()

    twilio = TwilioClient(
        settings.twilio_base_url,
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        RateLimiter(settings.rate_limit_twilio_per_s),
        settings.provider_timeout_seconds,
        settings.provider_max_connections,
        settings.provider_deadline_seconds,
    )
    return ProviderRegistry(
        {
            "smtp": SmtpEmail(
                settings.smtp_host,
                settings.smtp_port,
                settings.email_from,
                settings.smtp_username,
                settings.smtp_password,
                settings.smtp_starttls,
                settings.smtp_use_tls,
                settings.smtp_validate_certs,
                settings.smtp_timeout_seconds,
                settings.smtp_pool_size,
                RateLimiter(settings.rate_limit_smtp_per_s),
            ),
            "sendgrid": SendGridEmail(
                settings.sendgrid_api_base_url,
                settings.sendgrid_api_key,
                RateLimiter(settings.rate_limit_sendgrid_per_s),
                settings.provider_timeout_seconds,
                settings.provider_max_connections,
                settings.provider_deadline_seconds,
            ),
            "twilio_sms": TwilioSms(twilio),
            "twilio_voice": TwilioVoice(twilio),
            "print_api": PrintApiLetters(
                settings.print_api_base_url,
                settings.print_api_key,
                RateLimiter(settings.rate_limit_print_per_s),
                today,
                deadline=settings.provider_deadline_seconds,
            ),
            "drop_folder": DropFolderLetters(settings.letter_drop_folder, today),
            "webhook": SignedWebhooks(
                RateLimiter(settings.rate_limit_webhook_per_s),
                settings.provider_timeout_seconds,
                deadline=settings.provider_deadline_seconds,
                egress=OutboundPolicy(settings.outbound_allowed_networks),
            ),
            "collector": CollectorTasks(runtime.sessions, clock.now),
        }
    )


def build_send_gate(settings: Settings, runtime: ServiceRuntime) -> SendGate:
    """One slot per provider connection: a delivery marked `sending` finds its connection free at once."""
    twilio = asyncio.Semaphore(settings.provider_max_connections)  # SMS and voice share one Twilio client
    return SendGate(
        runtime.engine,
        {
            "smtp": asyncio.Semaphore(settings.smtp_pool_size),
            "twilio_sms": twilio,
            "twilio_voice": twilio,
        },
        default_slots=settings.provider_max_connections,
        # Webhooks go to each tenant's own endpoint: one slow endpoint must not take every webhook slot.
        per_tenant={"webhook": settings.webhook_max_connections_per_tenant},
    )


def build_runtime(settings: Settings, clock: Clock) -> NotifierRuntime:
    keyring = Keyring.from_settings(settings)  # first: a malformed key setting stops the start, naming it
    runtime: NotifierRuntime = ServiceRuntime(
        name="notifier",
        settings=settings,
        clock=clock,
        metadata=orm.metadata,
        schema=orm.SCHEMA,
        produces=[topics.NOTIFICATIONS],
    )
    secrets = ChannelSecrets(runtime.sessions, keyring)
    runtime.add_readiness_check("stored_secrets", secrets.health.ready)
    ledger = consumer_apply(
        LEDGER_HANDLERS, group=LEDGER_GROUP, context=lambda session: session, finish=record_positions
    )
    runtime.add_consumer(LEDGER_GROUP, [topics.LEDGER], ledger)
    steps = consumer_apply(
        STEP_HANDLERS, group=STEPS_GROUP, context=lambda session: StepBatch(session, clock.now()), in_span=note_trace
    )
    runtime.add_consumer(STEPS_GROUP, [topics.STEPS], steps)
    renderer = Renderer(PARTIALS, settings.render_limits())
    composer = Composer(settings, renderer)
    providers = build_providers(settings, clock, runtime)
    watermark = (
        LedgerWatermark(
            settings.kafka_bootstrap_servers,
            topics.LEDGER,
            LEDGER_GROUP,
            runtime.sessions,
            settings.ledger_catch_up_wait_seconds,
            security=runtime.kafka_security,
        )
        if settings.ledger_catch_up_required
        else None
    )
    gate = build_send_gate(settings, runtime)
    dispatcher = Dispatcher(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        clock=clock,
        composer=composer,
        providers=providers,
        gate=gate,
        retry=RetryPolicy(settings.max_send_attempts, settings.retry_base_seconds, settings.retry_max_seconds),
        batch_size=settings.dispatch_batch_size,
        watermark=watermark,
        stuck_after_seconds=settings.sending_stuck_after_seconds,
        claim_lease_seconds=settings.dispatch_claim_lease_seconds,
        # As many rows in hand as the loops together claimed before batches ran on their own.
        max_in_hand=settings.dispatch_batch_size * settings.dispatch_workers,
        secrets=secrets,
    )
    # Several loops share the due rows through SKIP LOCKED, exactly as replicas do.
    runtime.add_timer("deliveries", dispatcher.dispatch_due, dispatcher.due_stats, workers=settings.dispatch_workers)
    retention = MessageRetention(runtime.sessions, settings.message_retention_days)
    runtime.add_timer("message-retention", retention.purge_due, retention.due_stats)
    egress = OutboundPolicy(settings.outbound_allowed_networks)
    runtime.objects = Notifier(settings, clock, renderer, composer, providers, dispatcher, egress, secrets)

    async def finish_sending() -> None:
        dispatcher.stop_sending()  # open calls finish, unsent claims go back to pending (see the dispatcher)
        # Before the runtime's parts stop: the batches' outcomes must reach the outbox while the relay drains it.
        await dispatcher.drain(timeout=settings.shutdown_grace_seconds / 2)

    async def close_clients() -> None:
        # Provider connections (SMTP pool, HTTP clients, the watermark's broker client) close after the runtime
        # has stopped its timers, so no send is cut off mid-call by our own shutdown.
        await gate.aclose()
        await providers.aclose()
        if watermark is not None:
            await watermark.close()

    runtime.on_stop(finish_sending, before_parts=True)
    runtime.on_stop(close_clients)
    return runtime


def create_app(runtime: NotifierRuntime) -> FastAPI:
    settings = runtime.settings
    return create_service_app(
        runtime,
        title="notifier",
        description="Templates, channels, at-most-once delivery, receipts and opt-outs.",
        routers=[
            api.router, tasks_api.router, templates_api.router, callbacks.router, customer_pages.router, dev.router,
            personal_data_router("notifier", personal_data.collect), event_export.router,
        ],
        limits=[
            RouteLimits(
                "/callbacks", max_body_bytes=settings.webhook_max_body_bytes,
                rate_per_minute=settings.rate_limit_webhooks_per_minute, group="webhooks",
            ),
            RouteLimits("/pay", rate_per_minute=settings.rate_limit_pages_per_minute, group="pages"),
            RouteLimits("/unsubscribe", rate_per_minute=settings.rate_limit_pages_per_minute, group="pages"),
        ],
    )  # fmt: skip
