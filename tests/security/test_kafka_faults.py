"""Kafka security faults on a real broker: an untrusted CA, a missing or expired client certificate, refused
credentials, a key file not mounted yet. Each makes readiness false with ONE log line naming the cause and the
setting, however often the service retries (no crash loop, no stack trace per retry), and a fixed fault lets the
service become ready without a restart.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dunning_kit.clock import SimulatedClock
from dunning_kit.embedded import EmbeddedBroker
from dunning_kit.services import spec
from dunning_kit.testing import RunningService, poll_until, start_service
from tests.security.conftest import tls_settings
from tests.security.pki import Pki
from tests.security.terminator import TlsTerminator

RETRIES = 3  # the cause must stay one line however many times the service has tried


@pytest.fixture
def authenticating_broker() -> Iterator[EmbeddedBroker]:
    """Tansu requiring SASL authentication: it has no users (its memory store cannot be given any), so it
    refuses every credential, which is the fault to show."""
    broker = EmbeddedBroker(extra_args=("--authentication",)).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def sasl_files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "username").write_text("ledger-sync\n")
    (tmp_path / "password").write_text("not-a-user-of-this-broker\n")
    return tmp_path / "username", tmp_path / "password"


async def start_unready(
    database_url: str, clock: SimulatedClock, bootstrap: str, kafka: dict[str, object]
) -> RunningService:
    return await start_service(
        spec("ledger-sync"), database_url=database_url, bootstrap_servers=bootstrap, clock=clock, overrides=kafka,
        wait_for_broker=False,
    )  # fmt: skip


async def readiness(svc: RunningService) -> tuple[int, dict[str, bool]]:
    async with svc.client(key=None) as http:
        response = await http.get("/readyz")
    return response.status_code, response.json()["checks"]


def complaints(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def assert_one_clear_line(
    svc: RunningService, caplog: pytest.LogCaptureFixture, setting: str, *cause: str
) -> logging.LogRecord:
    await poll_until(lambda: _at_least(svc, RETRIES), what=f"{RETRIES} attempts to use the broker")
    status, checks = await readiness(svc)
    assert status == 503 and checks["broker"] is False, checks
    said = complaints(caplog)
    assert len(said) == 1, [r.getMessage() for r in said]
    line = said[0]
    message = line.getMessage()
    assert setting in message and all(c in message for c in cause), message
    assert line.exc_info is None, "no stack trace"
    assert svc.runtime.broker_problem is not None and svc.runtime.broker_problem in message
    return line


async def _at_least(svc: RunningService, attempts: int) -> bool:
    return svc.runtime.broker_attempts > attempts


@dataclass(frozen=True)
class Fault:
    broker: str  # the fixture serving it
    settings: Callable[[Pki, tuple[Path, Path]], dict[str, object]]
    setting: str  # named in the one log line, with `cause`
    cause: tuple[str, ...]


FAULTS = {
    "untrusted CA": Fault(
        "mutual_tls_terminator", lambda pki, _: tls_settings(pki, mutual=True, ca=pki.stranger_ca),
        "KAFKA_SSL_CA_FILE", ("certificate", "is not trusted", "stranger-ca.crt"),
    ),
    "missing client certificate": Fault(
        "mutual_tls_terminator", lambda pki, _: tls_settings(pki, mutual=False),
        "KAFKA_SSL_CERT_FILE", ("requires a client certificate", "KAFKA_SSL_KEY_FILE"),
    ),
    "expired client certificate": Fault(
        "mutual_tls_terminator",
        lambda pki, _: tls_settings(pki, mutual=True) | {"kafka_ssl_cert_file": pki.expired_client.cert,
                                                         "kafka_ssl_key_file": pki.expired_client.key},
        "KAFKA_SSL_CERT_FILE", ("refused the client certificate", "expired-client.crt", "expired"),
    ),
    "refused SCRAM credentials": Fault(
        "authenticating_broker",
        lambda _, files: {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-512",
                          "kafka_sasl_username_file": files[0], "kafka_sasl_password_file": files[1]},
        "KAFKA_SASL_PASSWORD_FILE", ("refused the credentials", "SCRAM-SHA-512"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_a_refused_connection_makes_readiness_false_with_one_line_naming_the_cause(
    fault: Fault,
    request: pytest.FixtureRequest,
    pki: Pki,
    sasl_files: tuple[Path, Path],
    database_url: str,
    clock: SimulatedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker: TlsTerminator | EmbeddedBroker = request.getfixturevalue(fault.broker)
    svc = await start_unready(database_url, clock, broker.bootstrap_servers, fault.settings(pki, sasl_files))
    try:
        await assert_one_clear_line(svc, caplog, fault.setting, *fault.cause)
        assert svc.server.serving, "the service keeps serving (health, readiness) and retrying"
    finally:
        await svc.stop()


async def test_a_key_file_mounted_late_is_named_once_then_the_service_becomes_ready(
    mutual_tls_terminator: TlsTerminator,
    pki: Pki,
    tmp_path: Path,
    database_url: str,
    clock: SimulatedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mount = tmp_path / "kafka-user"  # the Secret's mount, empty until Kubernetes fills it
    mount.mkdir()
    kafka = tls_settings(pki, mutual=True) | {"kafka_ssl_key_file": mount / "user.key"}
    caplog.set_level(logging.INFO, logger="dunning.runtime")
    svc = await start_unready(database_url, clock, mutual_tls_terminator.bootstrap_servers, kafka)
    try:
        await assert_one_clear_line(svc, caplog, "KAFKA_SSL_KEY_FILE", "user.key", "does not exist")

        shutil.copy(pki.client.key, mount / "user.key")

        async def ready() -> bool:
            return (await readiness(svc))[0] == 200

        await poll_until(ready, timeout=30, what="readiness once the key is there")
        assert len(complaints(caplog)) == 1
        assert any("Kafka usable again" in r.getMessage() for r in caplog.records)
        assert mutual_tls_terminator.accepted_client_certificates()
    finally:
        await svc.stop()
