"""How every Kafka client of the platform encrypts and authenticates: the security settings turned into aiokafka
client arguments, in this one place (producer, consumers, priority lanes, admin, the DLQ command, probes).

The files (CA bundle, client certificate and key, SASL username and password) are read each time a client is
built, not once at start: a Kubernetes Secret mounted after the pod started, or rotated while it runs, is picked up
by the next connection attempt. A file that is missing, unreadable or not what its setting says raises
`KafkaAccessError` naming the setting, which the runtime reports as its readiness cause.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
PROTOCOLS: tuple[SecurityProtocol, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: tuple[SaslMechanism, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")

# The environment variables of the settings (dunning_kit.settings), named in every error an operator reads.
PROTOCOL_SETTING = "KAFKA_SECURITY_PROTOCOL"
MECHANISM_SETTING = "KAFKA_SASL_MECHANISM"
USERNAME_SETTING = "KAFKA_SASL_USERNAME_FILE"
PASSWORD_SETTING = "KAFKA_SASL_PASSWORD_FILE"
CA_SETTING = "KAFKA_SSL_CA_FILE"
CERT_SETTING = "KAFKA_SSL_CERT_FILE"
KEY_SETTING = "KAFKA_SSL_KEY_FILE"
CHECK_HOSTNAME_SETTING = "KAFKA_SSL_CHECK_HOSTNAME"
BOOTSTRAP_SETTING = "KAFKA_BOOTSTRAP_SERVERS"


class KafkaAccessError(Exception):
    """Why the clients cannot use the broker, in words an operator can act on, naming the setting at fault."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class KafkaSecurity:
    """The security settings (combinations are validated where they are read: dunning_kit.settings)."""

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username_file: Path | None = None
    sasl_password_file: Path | None = None
    ssl_ca_file: Path | None = None  # None: the system's trust store
    ssl_cert_file: Path | None = None  # with ssl_key_file: mutual TLS
    ssl_key_file: Path | None = None
    ssl_check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def describe(self) -> str:
        """The configuration in one short phrase (no secrets), for start-up logs and error messages."""
        parts: list[str] = [self.protocol]
        if self.uses_sasl:
            parts.append(str(self.sasl_mechanism))
        if self.uses_tls:
            parts.append("mutual TLS" if self.ssl_cert_file else "server-authenticated TLS")
            if not self.ssl_check_hostname:
                parts.append("hostname not verified")
        return ", ".join(parts)

    def client_kwargs(self) -> dict[str, Any]:
        """The security arguments of an aiokafka producer, consumer, admin client or connection."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = _read_secret(self.sasl_username_file, USERNAME_SETTING)
            kwargs["sasl_plain_password"] = _read_secret(self.sasl_password_file, PASSWORD_SETTING)
        return kwargs

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the broker's certificate against the CA bundle (or the system store), and its host name
        unless switched off; presents the client certificate when one is configured (mutual TLS)."""
        ca = _existing(self.ssl_ca_file, CA_SETTING) if self.ssl_ca_file else None
        try:
            context = ssl.create_default_context(cafile=str(ca) if ca else None)
        except ssl.SSLError as exc:
            raise KafkaAccessError(
                f"{CA_SETTING}={ca} holds no PEM certificate ({_ssl_reason(exc)})", CA_SETTING
            ) from None
        # create_default_context already verifies the chain (CERT_REQUIRED); only the host name check is optional.
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_cert_file or self.ssl_key_file:
            cert = _existing(self.ssl_cert_file, CERT_SETTING)
            key = _existing(self.ssl_key_file, KEY_SETTING)
            try:
                context.load_cert_chain(str(cert), str(key))
            except ssl.SSLError as exc:
                reason = _ssl_reason(exc)
                if "KEY_VALUES_MISMATCH" in reason:
                    raise KafkaAccessError(
                        f"{KEY_SETTING}={key} is not the key of the certificate in {CERT_SETTING}={cert}", KEY_SETTING
                    ) from None
                raise KafkaAccessError(
                    f"{CERT_SETTING}={cert} and {KEY_SETTING}={key} must be a PEM certificate and its unencrypted "
                    f"PEM private key ({reason})",
                    CERT_SETTING,
                ) from None
        return context


PLAINTEXT = KafkaSecurity()


def _existing(path: Path | None, setting: str) -> Path:
    if path is None:
        raise KafkaAccessError(f"{setting} is not set", setting)
    if not path.is_file():
        raise KafkaAccessError(f"{setting}={path} does not exist (is the Secret mounted?)", setting)
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise KafkaAccessError(f"{setting}={path} cannot be read ({exc.strerror})", setting) from None
    return path


def _read_secret(path: Path | None, setting: str) -> str:
    try:
        value = _existing(path, setting).read_text().rstrip("\r\n")
    except UnicodeDecodeError:
        raise KafkaAccessError(f"{setting}={path} is not UTF-8 text", setting) from None
    if not value:
        raise KafkaAccessError(f"{setting}={path} is empty", setting)
    return value


def _ssl_reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc)
