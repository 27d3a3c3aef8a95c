"""Can the clients use the broker, and if not, why: one connection made the way every client makes it (TLS
handshake, SASL authentication, a metadata request), its failure turned into one sentence naming the setting at
fault.

aiokafka's own clients swallow the cause (`Unable to bootstrap from [...]`) after logging an error per attempt;
the runtime probes first, so an untrusted CA, a refused client certificate, missing files or refused credentials
give one clear readiness cause instead of a stream of retries.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from typing import Any

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed, UnsupportedSaslMechanismError
from aiokafka.protocol.metadata import MetadataRequest

from dunning_events.kafka_security import (
    BOOTSTRAP_SETTING,
    CA_SETTING,
    CERT_SETTING,
    CHECK_HOSTNAME_SETTING,
    KEY_SETTING,
    MECHANISM_SETTING,
    PASSWORD_SETTING,
    PROTOCOL_SETTING,
    USERNAME_SETTING,
    KafkaAccessError,
    KafkaSecurity,
)

# OpenSSL's verify codes for a broker certificate that is fine but for its dates or its name.
_EXPIRED, _NOT_YET_VALID, _HOST_MISMATCH, _IP_MISMATCH = 10, 9, 62, 64
# TLS alerts a broker sends when it does not accept the client's certificate (OpenSSL reason names).
_CLIENT_CERT_REFUSED = {
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "it has expired",
    "TLSV1_ALERT_UNKNOWN_CA": "it is not signed by a CA the broker trusts",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker calls it bad (not signed by a CA it trusts?)",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "it has been revoked",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "the broker does not support it",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the broker does not accept it",
    "TLSV1_ALERT_ACCESS_DENIED": "the broker denies it access",
}
_CERT_REQUIRED = ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_HANDSHAKE_FAILURE")
ALERT_WAIT_S = 2.0  # a broker that refuses a TLS 1.3 client certificate says so right after the handshake


async def probe_broker(bootstrap_servers: str, security: KafkaSecurity, timeout: float = 10.0) -> None:
    """Return when a client can connect, authenticate and read metadata through one of the bootstrap servers;
    otherwise raise KafkaAccessError with the cause (the most telling one when several servers fail)."""
    kwargs = security.client_kwargs()  # missing or unreadable files: KafkaAccessError naming the setting
    causes: list[KafkaAccessError] = []
    for host, port, _family in collect_hosts(bootstrap_servers, randomize=False):  # a stable cause to report
        try:
            async with asyncio.timeout(timeout):
                conn = await create_conn(
                    host, port, client_id="dunning-probe", request_timeout_ms=int(timeout * 1000), **kwargs
                )
                try:
                    await conn.send(MetadataRequest([]))
                finally:
                    conn.close()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            causes.append(await explain(exc, host, port, security, kwargs, timeout))
    if not causes:
        raise KafkaAccessError(f"{BOOTSTRAP_SETTING} names no server", BOOTSTRAP_SETTING)
    # A security cause on one server beats "not reachable" on another: it is the one to fix.
    raise next((c for c in causes if c.setting != BOOTSTRAP_SETTING), causes[0])


async def explain(
    exc: BaseException, host: str, port: int, security: KafkaSecurity, kwargs: dict[str, Any], timeout: float
) -> KafkaAccessError:
    where = f"{host}:{port}"
    for cause in _chain(exc):
        if isinstance(cause, KafkaAccessError):
            return cause
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _untrusted_broker(cause, where, host, security)
        if isinstance(cause, ssl.SSLError):
            return _refused_handshake(cause, where, security)
        if isinstance(cause, SaslAuthenticationFailed):
            detail = str(cause.args[0]) if cause.args and cause.args[0] else "authentication failed"
            return KafkaAccessError(
                f"the broker at {where} refused the credentials in {USERNAME_SETTING}={security.sasl_username_file} "
                f"and {PASSWORD_SETTING}={security.sasl_password_file} ({security.sasl_mechanism}: {detail})",
                PASSWORD_SETTING,
            )
        if isinstance(cause, UnsupportedSaslMechanismError):
            return KafkaAccessError(
                f"the broker at {where} does not offer {MECHANISM_SETTING}={security.sasl_mechanism} ({cause})",
                MECHANISM_SETTING,
            )
        if isinstance(cause, ConnectionRefusedError):
            return KafkaAccessError(f"nothing accepts connections at {where} ({BOOTSTRAP_SETTING})", BOOTSTRAP_SETTING)
        if isinstance(cause, socket.gaierror):
            return KafkaAccessError(f"cannot resolve {host} ({BOOTSTRAP_SETTING}): {cause}", BOOTSTRAP_SETTING)
        if isinstance(cause, TimeoutError):
            hint = f", or a listener without TLS ({PROTOCOL_SETTING}={security.protocol})" if security.uses_tls else ""
            return KafkaAccessError(
                f"no answer from {where} within {timeout:.0f}s ({BOOTSTRAP_SETTING}; a firewall or NetworkPolicy"
                f"{hint}?)",
                BOOTSTRAP_SETTING,
            )
    if security.uses_sasl and _during_sasl(exc):
        # A SCRAM server that refuses answers an error instead of its signature (RFC 5802 `e=`), and some brokers
        # just hang up: either way the credentials (or the mechanism) were not accepted.
        how = "it hung up" if isinstance(exc, KafkaConnectionError) else "it answered no server signature"
        return KafkaAccessError(
            f"the broker at {where} refused the credentials in {USERNAME_SETTING}={security.sasl_username_file} "
            f"and {PASSWORD_SETTING}={security.sasl_password_file} ({security.sasl_mechanism} authentication "
            f"failed: {how})",
            PASSWORD_SETTING,
        )
    if isinstance(exc, KafkaConnectionError | ConnectionError | EOFError):
        return await _closed_after_connect(where, host, port, security, kwargs)
    return KafkaAccessError(f"the broker at {where} cannot be used: {type(exc).__name__}: {exc}", BOOTSTRAP_SETTING)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _during_sasl(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_do_sasl_handshake":  # aiokafka.conn.AIOKafkaConnection
            return True
        tb = tb.tb_next
    return False


def _untrusted_broker(
    exc: ssl.SSLCertVerificationError, where: str, host: str, security: KafkaSecurity
) -> KafkaAccessError:
    said = exc.verify_message or str(exc)
    if exc.verify_code == _EXPIRED:
        return KafkaAccessError(f"the broker's certificate at {where} has expired ({said})", CA_SETTING)
    if exc.verify_code == _NOT_YET_VALID:
        return KafkaAccessError(f"the broker's certificate at {where} is not valid yet (check the clocks)", CA_SETTING)
    if exc.verify_code in (_HOST_MISMATCH, _IP_MISMATCH):
        return KafkaAccessError(
            f"the broker's certificate at {where} is not issued for {host} ({said}): connect by a name it holds, or "
            f"set {CHECK_HOSTNAME_SETTING}=false",
            CHECK_HOSTNAME_SETTING,
        )
    trusted = f"{CA_SETTING}={security.ssl_ca_file}" if security.ssl_ca_file else f"{CA_SETTING} unset: the system CAs"
    return KafkaAccessError(
        f"the broker's certificate at {where} is not trusted ({said}); {trusted} must hold the CA that signed it",
        CA_SETTING,
    )


def _refused_handshake(exc: ssl.SSLError, where: str, security: KafkaSecurity) -> KafkaAccessError:
    reason = str(exc.reason or exc)
    if reason in _CERT_REQUIRED and not security.ssl_cert_file:
        return KafkaAccessError(
            f"the broker at {where} requires a client certificate (mutual TLS): set {CERT_SETTING} and {KEY_SETTING}",
            CERT_SETTING,
        )
    if reason in _CLIENT_CERT_REFUSED or reason in _CERT_REQUIRED:
        why = _CLIENT_CERT_REFUSED.get(reason, "the broker does not accept it")
        return KafkaAccessError(
            f"the broker at {where} refused the client certificate {CERT_SETTING}={security.ssl_cert_file}: {why} "
            f"({reason})",
            CERT_SETTING,
        )
    return KafkaAccessError(
        f"the TLS handshake with {where} failed ({reason}): does this listener speak TLS? "
        f"({PROTOCOL_SETTING}={security.protocol})",
        PROTOCOL_SETTING,
    )


async def _closed_after_connect(
    where: str, host: str, port: int, security: KafkaSecurity, kwargs: dict[str, Any]
) -> KafkaAccessError:
    """The broker hung up without saying why. Over TLS 1.3 a broker checks the client certificate after the
    handshake and sends its alert then, which a client that already wrote its first request may lose to the
    connection reset: listen first this time, to hear the alert."""
    if security.uses_tls:
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=kwargs["ssl_context"])
        except ssl.SSLError as exc:
            return _refused_handshake(exc, where, security)
        except OSError:
            pass
        else:
            try:
                await asyncio.wait_for(reader.read(1), ALERT_WAIT_S)
            except ssl.SSLError as exc:
                return _refused_handshake(exc, where, security)
            except (OSError, TimeoutError):
                pass
            finally:
                writer.close()
        return KafkaAccessError(
            f"the broker at {where} closed the connection after the TLS handshake without saying why: does it need "
            f"a client certificate ({CERT_SETTING}) or SASL ({PROTOCOL_SETTING}={security.protocol})?",
            PROTOCOL_SETTING,
        )
    return KafkaAccessError(
        f"the broker at {where} closed the connection before answering: does this listener expect TLS or SASL? "
        f"({PROTOCOL_SETTING}={security.protocol})",
        PROTOCOL_SETTING,
    )
