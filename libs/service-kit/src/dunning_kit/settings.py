"""Settings every service reads from its environment (each service adds its own on top)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/dunning",
        description="SQLAlchemy URL of the service's PostgreSQL database (asyncpg driver)",
    )
    database_schema: str = Field("", description="Schema holding the service's tables (default: its package name)")
    db_pool_size: int = Field(10, description="Connections kept in the service's pool")
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
    consumer_max_records: int = Field(1000, description="Most events one consumer batch (one transaction) holds")
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
        "dev-only-change-me", description="HMAC key of customer links (same value in notifier and promise-tracker)"
    )
    clock_file: Path | None = Field(
        None, description="Simulations and fault tests only: read the time from this file, shared by all services"
    )
