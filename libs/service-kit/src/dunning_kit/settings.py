"""Settings every service reads from its environment (each service adds its own on top)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dunning_kit.dev_secrets import DEV_SIGNING_KEY


class ServiceSettings(BaseSettings):
    """A secret setting is marked `json_schema_extra={"secret": True}`: outside DEV_MODE, dunning_kit/dev_secrets.py
    refuses to start with it empty or a shipped development value."""

    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    dev_mode: bool = Field(
        False,
        description="Development machine: shipped development secrets are accepted at start, and the notifier "
        "serves GET /dev/outbox without a key (`make up` and the tests set it; never in production)",
    )

    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/dunning",
        description="SQLAlchemy URL of the service's PostgreSQL database (asyncpg driver)",
    )
    database_schema: str = Field("", description="Schema holding the service's tables (default: its package name)")
    db_pool_size: int = Field(10, description="Connections kept in the service's pool")
    db_statement_timeout_ms: int = Field(
        30_000,
        ge=0,
        description="PostgreSQL statement_timeout of every connection of the service, in ms (0 = none): a runaway "
        "statement is cancelled instead of holding a connection and its locks",
    )
    db_lock_timeout_ms: int = Field(
        10_000,
        ge=0,
        description="PostgreSQL lock_timeout of every connection, in ms (0 = none): a statement that waits this "
        "long for a lock gives up (a request answers 503 with Retry-After, a consumer batch is retried)",
    )
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated")
    kafka_topic_partitions: int = Field(6, description="Partitions for topics the service creates if missing")
    kafka_create_topics: bool = Field(True, description="Create missing topics on start (off when Strimzi owns them)")
    http_host: str = Field("0.0.0.0", description="Address the HTTP API binds to")
    http_port: int = Field(8000, description="Port of the HTTP API")
    log_level: str = Field("INFO", description="Log level")
    log_format: str = Field("json", description="json (one object per line) or text")
    api_keys: str = Field(
        "",
        description="API keys: comma-separated `tenant:scope:sha256(key)` entries (scope api or admin)",
    )
    api_keys_file: Path | None = Field(None, description="File with one `tenant:scope:sha256(key)` entry per line")
    # 250, not more: a settlement the priority lane found waits for at most the batch being applied, and on a
    # busy 2-core host a batch of 1,000 bulk events held it ~0.4 s at p99 (250: ~0.27 s, and no more engine CPU).
    consumer_max_records: int = Field(
        250, description="Most events one consumer batch (one transaction) holds; a settlement may wait for one batch"
    )
    outbox_batch_size: int = Field(1000, description="Most outbox rows one relay batch publishes")
    outbox_poll_interval: float = Field(0.2, description="Seconds the relay waits when the outbox looks empty")
    outbox_max_message_bytes: int = Field(
        1_000_000,
        gt=0,
        description="Largest event the relay hands to the broker (key, value, headers); a larger outbox row is moved "
        "to outbox_dead_letters instead of blocking the rows behind it. Keep it at or below the topics' "
        "max.message.bytes (Kafka's default: 1048588)",
    )
    inbox_retention_hours: float = Field(
        768.0,
        description="Hours an applied event's id is kept for de-duplication: longer than the topics' retention "
        "(30 days), so even a consumer group replaying its topic from the start applies nothing twice",
    )
    timer_poll_interval: float = Field(1.0, description="Seconds a timer loop waits when nothing is due")
    timer_batch_size: int = Field(1000, description="Most due timers one claim takes")
    gc_tuning: bool = Field(
        True, description="Freeze the start-up heap out of the cyclic GC and collect less often (see serve.py)"
    )
    shutdown_grace_seconds: float = Field(20.0, description="Time allowed to drain on SIGTERM")
    public_base_url: str = Field("http://127.0.0.1:8000", description="Base URL customers' links point at")
    self_service_signing_key: str = Field(
        DEV_SIGNING_KEY,
        description="HMAC key of customer links (same value in notifier and promise-tracker)",
        json_schema_extra={"secret": True},
    )
    clock_file: Path | None = Field(
        None, description="Simulations and fault tests only: read the time from this file, shared by all services"
    )

    # ---- what the public can send (dunning_kit/request_limits.py)
    max_request_body_bytes: int = Field(
        1_048_576,
        ge=1,
        description="Largest request body of a route without a limit of its own; a larger one gets 413 before "
        "it is read",
    )
    webhook_max_body_bytes: int = Field(
        1_048_576,
        ge=1,
        description="Largest body of a provider or ERP webhook (read whole before its signature is checked)",
    )
    rate_limit_pages_per_minute: int = Field(
        60,
        ge=0,
        description="Requests a minute one client may make to the customer pages (self-service, pay, "
        "unsubscribe), with bursts up to that many; then 429 with Retry-After (0: no limit)",
    )
    rate_limit_webhooks_per_minute: int = Field(
        12_000,
        ge=0,
        description="Requests a minute one client may make to the webhook endpoints (0: no limit): a provider's "
        "receipts come in bursts (Twilio posts a callback per status change of every message)",
    )
    rate_limit_operations_per_minute: int = Field(
        1200, ge=0, description="Requests a minute one client may make to /metrics and /quietz (0: no limit)"
    )
    trusted_proxy_hops: int = Field(
        0,
        ge=0,
        description="Reverse proxies in front of the service that append to X-Forwarded-For: the rate limits "
        "count the address the outermost of them saw (0: the peer address)",
    )

    def optional_secrets(self) -> set[str]:
        """Secret settings this configuration can run without: checked at start only when set. Every other
        secret setting must be set to a real value outside DEV_MODE. A service names the secrets of features it
        does not use, or that are chosen per tenant at run time."""
        return set()
