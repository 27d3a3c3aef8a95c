"""Settings every service reads from its environment (each service adds its own on top)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dunning_events.kafka_security import (
    CA_SETTING,
    CERT_SETTING,
    KEY_SETTING,
    MECHANISM_SETTING,
    MECHANISMS,
    PASSWORD_SETTING,
    PROTOCOL_SETTING,
    USERNAME_SETTING,
    KafkaSecurity,
    SaslMechanism,
    SecurityProtocol,
)
from dunning_kit.dev_secrets import DEV_SIGNING_KEY


class KafkaClientSettings(BaseSettings):
    """How every Kafka client connects: the services' settings, also read alone by `python -m dunning_kit.dlq`."""

    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated")
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="PLAINTEXT, SSL (TLS; mutual TLS with a client certificate), SASL_PLAINTEXT or SASL_SSL, for "
        "every producer, consumer and admin client (see Kafka security)",
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None, description="SASL_* only: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"
    )
    kafka_sasl_username_file: Path | None = Field(
        None, description="SASL_* only: file holding the user name (a Kubernetes Secret mount), read at each connect"
    )
    kafka_sasl_password_file: Path | None = Field(
        None, description="SASL_* only: file holding the password (a Kubernetes Secret mount), read at each connect"
    )
    kafka_ssl_ca_file: Path | None = Field(
        None,
        description="SSL/SASL_SSL: PEM bundle of the CAs that sign the brokers' certificates (Strimzi: the cluster "
        "CA's ca.crt); unset: the system's trust store",
    )
    kafka_ssl_cert_file: Path | None = Field(
        None, description="SSL/SASL_SSL: PEM client certificate for mutual TLS (with KAFKA_SSL_KEY_FILE)"
    )
    kafka_ssl_key_file: Path | None = Field(
        None, description="SSL/SASL_SSL: unencrypted PEM private key of KAFKA_SSL_CERT_FILE"
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="SSL/SASL_SSL: the broker's certificate must name the host connected to"
    )

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.strip().upper() or None if isinstance(value, str) else value

    @field_validator(
        "kafka_sasl_username_file", "kafka_sasl_password_file", "kafka_ssl_ca_file", "kafka_ssl_cert_file",
        "kafka_ssl_key_file", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Self:
        """Refuse, at start, a combination that cannot work or would silently drop a setting (a client
        certificate on a plaintext listener, credentials that are never sent)."""
        protocol = self.kafka_security_protocol
        sasl = {
            MECHANISM_SETTING: self.kafka_sasl_mechanism,
            USERNAME_SETTING: self.kafka_sasl_username_file,
            PASSWORD_SETTING: self.kafka_sasl_password_file,
        }
        tls = {CA_SETTING: self.kafka_ssl_ca_file, CERT_SETTING: self.kafka_ssl_cert_file,
               KEY_SETTING: self.kafka_ssl_key_file}  # fmt: skip
        if protocol.startswith("SASL_"):
            missing = [name for name, value in sasl.items() if value is None]
            if missing:
                raise ValueError(
                    f"{PROTOCOL_SETTING}={protocol} needs {', '.join(missing)} "
                    f"({MECHANISM_SETTING}: one of {', '.join(MECHANISMS)})"
                )
        else:
            stray = [name for name, value in sasl.items() if value is not None]
            if stray:
                raise ValueError(
                    f"{', '.join(stray)} set but {PROTOCOL_SETTING}={protocol} does not use SASL: use SASL_SSL or "
                    "SASL_PLAINTEXT, or unset them"
                )
        if protocol not in ("SSL", "SASL_SSL"):
            stray = [name for name, value in tls.items() if value is not None]
            if stray:
                raise ValueError(
                    f"{', '.join(stray)} set but {PROTOCOL_SETTING}={protocol} does not use TLS: use SSL or "
                    "SASL_SSL, or unset them"
                )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            given, lacking = (
                (CERT_SETTING, KEY_SETTING) if self.kafka_ssl_key_file is None else (KEY_SETTING, CERT_SETTING)
            )
            raise ValueError(f"{given} is set without {lacking}: mutual TLS needs the certificate and its key")
        return self

    def kafka_security(self) -> KafkaSecurity:
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username_file=self.kafka_sasl_username_file,
            sasl_password_file=self.kafka_sasl_password_file,
            ssl_ca_file=self.kafka_ssl_ca_file,
            ssl_cert_file=self.kafka_ssl_cert_file,
            ssl_key_file=self.kafka_ssl_key_file,
            ssl_check_hostname=self.kafka_ssl_check_hostname,
        )


class ServiceSettings(KafkaClientSettings):
    """A secret setting is marked `json_schema_extra={"secret": True}`: outside DEV_MODE, dunning_kit/dev_secrets.py
    refuses to start with it empty or a shipped development value."""

    # A refused value is not echoed in the error: it may be a secret (a malformed signing key is still one).
    model_config = SettingsConfigDict(extra="ignore", env_file=None, hide_input_in_errors=True)

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
    kafka_topic_partitions: int = Field(6, description="Partitions for topics the service creates if missing")
    kafka_create_topics: bool = Field(True, description="Create missing topics on start (off when Strimzi owns them)")
    # Tansu holds a group's join open for half the session timeout (measured: 10 s -> 5.0 s, 2 s -> 1.0 s), so
    # every start of a consumer waits that long; the tests run thousands of starts on 2 s.
    kafka_session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        description="Consumer session timeout in ms: a consumer silent this long leaves its group and its "
        "partitions move to the others (heartbeats every tenth of it, at most every second)",
    )
    http_host: str = Field("0.0.0.0", description="Address the HTTP API binds to")
    http_port: int = Field(8000, description="Port of the HTTP API")
    log_level: str = Field("INFO", description="Log level")
    log_format: str = Field("json", description="json (one object per line) or text")
    api_keys: str = Field(
        "",
        description="API keys: comma-separated `tenant:scope:sha256(key)` entries (scope api or admin)",
    )
    api_keys_file: Path | None = Field(None, description="File with one `tenant:scope:sha256(key)` entry per line")
    actor_verify_keys: str = Field(
        "",
        description="Ed25519 public keys (base64url, comma-separated: several during a rotation) the `Dunning-Actor` "
        "header of the workspace's calls is verified with; empty: a call naming a person is refused (in DEV_MODE "
        "empty trusts the shipped development key). `python -m dunning_kit.actor` makes a pair",
    )
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
    event_archive_days: int = Field(
        550,
        ge=0,
        description="Days a published event is kept in the service's event archive (18 months by default), which "
        "GET /v1/exports/events serves (with the outbox) to a read model backfilling what the topics (30 days) "
        "no longer hold; older ones are deleted",
    )
    inbox_retention_hours: float = Field(
        768.0,
        description="Hours an applied event's id is kept for de-duplication: longer than the topics' retention "
        "(30 days), so even a consumer group replaying its topic from the start applies nothing twice",
    )
    idempotency_key_ttl_hours: float = Field(
        24.0,
        gt=0,
        description="Hours an Idempotency-Key is remembered (by the service's clock): a retry within them replays "
        "the first answer; after them the key is new again, and housekeeping deletes it",
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

    @field_validator("actor_verify_keys")
    @classmethod
    def _actor_keys_readable(cls, value: str) -> str:
        from dunning_kit.actor import verify_keys  # the actor module imports the app's auth, which imports these

        verify_keys(value)
        return value

    def optional_secrets(self) -> set[str]:
        """Secret settings this configuration can run without: checked at start only when set. Every other
        secret setting must be set to a real value outside DEV_MODE. A service names the secrets of features it
        does not use, or that are chosen per tenant at run time."""
        return set()


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """A setting of `name=value` pairs, comma-separated (empty: none), such as `tenant=api-key` or
    `service=url`. ValueError names the entry that is wrong (`what` says what an entry should look like)."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, value = (part.strip() for part in entry.partition("="))
        if not sep or not name or not value:
            raise ValueError(f"entry {n}: expected {what}")
        if name in out:
            raise ValueError(f"entry {n}: {name!r} is listed twice")
        out[name] = value
    return out
