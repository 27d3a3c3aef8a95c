"""The exact aiokafka configuration each security setting produces, checked on the clients the platform builds.

SASL is verified this far (plus a broker refusing credentials, in test_kafka_faults): the embedded Tansu cannot
be given SCRAM users, so no successful SASL login can be shown on these machines.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from dunning_events.kafka import make_producer
from dunning_events.kafka_security import KafkaAccessError
from dunning_kit import dlq
from dunning_kit.services import REPO_ROOT
from dunning_kit.settings import ServiceSettings
from tests.security.pki import Pki

MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


@pytest.fixture
def secret_mount(tmp_path: Path) -> Path:
    """A Kubernetes Secret mount: one file per key, values as written by `kubectl create secret` (the trailing
    newline of a file made with echo included)."""
    (tmp_path / "username").write_text("policy-engine\n")
    (tmp_path / "password").write_text("s3cr3t with spaces\n")
    return tmp_path


def settings_from_env(monkeypatch: pytest.MonkeyPatch, **env: object) -> ServiceSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return ServiceSettings()


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_each_sasl_mechanism_and_protocol_configures_the_client_exactly(
    monkeypatch: pytest.MonkeyPatch, secret_mount: Path, pki: Pki, mechanism: str, protocol: str
) -> None:
    tls = {"KAFKA_SSL_CA_FILE": pki.ca} if protocol == "SASL_SSL" else {}
    settings = settings_from_env(
        monkeypatch,
        KAFKA_SECURITY_PROTOCOL=protocol,
        KAFKA_SASL_MECHANISM=mechanism,
        KAFKA_SASL_USERNAME_FILE=secret_mount / "username",
        KAFKA_SASL_PASSWORD_FILE=secret_mount / "password",
        **tls,
    )
    kwargs = settings.kafka_security().client_kwargs()
    context = kwargs.pop("ssl_context", None)
    assert kwargs == {
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "policy-engine",
        "sasl_plain_password": "s3cr3t with spaces",
    }
    if protocol == "SASL_SSL":
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True
        assert context.cert_store_stats()["x509_ca"] == 1, "the CA bundle, not the system store"
    else:
        assert context is None

    # ... and that is what the platform's producer hands to its connections.
    producer = make_producer("127.0.0.1:9", "config-test", settings.kafka_security())
    client = producer.client
    assert (client._security_protocol, client._sasl_mechanism) == (protocol, mechanism)
    assert (client._sasl_plain_username, client._sasl_plain_password) == ("policy-engine", "s3cr3t with spaces")
    assert (client._ssl_context is not None) == (protocol == "SASL_SSL")
    await producer.stop()


@pytest.mark.parametrize("missing", ["KAFKA_SASL_USERNAME_FILE", "KAFKA_SASL_PASSWORD_FILE"])
def test_a_missing_credentials_file_is_an_error_naming_its_setting(
    monkeypatch: pytest.MonkeyPatch, secret_mount: Path, missing: str
) -> None:
    files = {
        "KAFKA_SASL_USERNAME_FILE": secret_mount / "username",
        "KAFKA_SASL_PASSWORD_FILE": secret_mount / "password",
    }
    files[missing] = secret_mount / "not-mounted"
    settings = settings_from_env(
        monkeypatch, KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="SCRAM-SHA-512", **files
    )
    with pytest.raises(KafkaAccessError) as refused:
        settings.kafka_security().client_kwargs()
    assert refused.value.setting == missing
    assert str(refused.value) == f"{missing}={secret_mount / 'not-mounted'} does not exist (is the Secret mounted?)"


def test_an_empty_password_file_is_an_error_naming_its_setting(
    monkeypatch: pytest.MonkeyPatch, secret_mount: Path
) -> None:
    (secret_mount / "password").write_text("\n")
    settings = settings_from_env(
        monkeypatch, KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME_FILE=secret_mount / "username", KAFKA_SASL_PASSWORD_FILE=secret_mount / "password",
    )  # fmt: skip
    with pytest.raises(KafkaAccessError, match=r"KAFKA_SASL_PASSWORD_FILE=.* is empty"):
        settings.kafka_security().client_kwargs()


def test_plaintext_is_the_default_and_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SSL_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert ServiceSettings().kafka_security().client_kwargs() == {"security_protocol": "PLAINTEXT"}


def test_tls_verifies_the_broker_and_its_host_name_unless_switched_off(
    monkeypatch: pytest.MonkeyPatch, pki: Pki
) -> None:
    on = settings_from_env(monkeypatch, KAFKA_SECURITY_PROTOCOL="ssl", KAFKA_SSL_CA_FILE=pki.ca)
    context = on.kafka_security().client_kwargs()["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True
    off = settings_from_env(monkeypatch, KAFKA_SSL_CHECK_HOSTNAME="false")
    context = off.kafka_security().client_kwargs()["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED, "the chain is still verified"
    assert context.check_hostname is False


def test_a_key_that_is_not_the_certificates_is_an_error_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, pki: Pki
) -> None:
    settings = settings_from_env(
        monkeypatch, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CERT_FILE=pki.client.cert,
        KAFKA_SSL_KEY_FILE=pki.broker.key,
    )  # fmt: skip
    with pytest.raises(KafkaAccessError, match=r"KAFKA_SSL_KEY_FILE=.*broker\.key is not the key of the certificate"):
        settings.kafka_security().client_kwargs()


def test_the_dlq_command_reads_the_same_settings_and_names_a_missing_file(
    monkeypatch: pytest.MonkeyPatch, secret_mount: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_from_env(
        monkeypatch, KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        KAFKA_SASL_USERNAME_FILE=secret_mount / "username", KAFKA_SASL_PASSWORD_FILE=secret_mount / "gone",
    )  # fmt: skip
    assert dlq.main(["list", "notifier.steps"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"dlq: cannot use Kafka: KAFKA_SASL_PASSWORD_FILE={secret_mount / 'gone'} does not exist (is the Secret mounted?)\n"
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME_FILE, KAFKA_SASL_PASSWORD_FILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN"}, "needs KAFKA_SASL_USERNAME_FILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": "/x.crt"}, "KAFKA_SSL_CERT_FILE is set without KAFKA_SSL_KEY_FILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEY_FILE": "/x.key"}, "KAFKA_SSL_KEY_FILE is set without KAFKA_SSL_CERT_FILE"),
        ({"KAFKA_SSL_CA_FILE": "/ca.crt"}, "KAFKA_SSL_CA_FILE set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use TLS"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_MECHANISM set but KAFKA_SECURITY_PROTOCOL=SSL does not use SASL"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "kafka_security_protocol"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "kafka_sasl_mechanism"),
    ],
)  # fmt: skip
def test_a_combination_that_cannot_work_is_refused_at_start_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(named)):
        settings_from_env(monkeypatch, **env)


KAFKA_CLIENT = re.compile(r"\bAIOKafka(?:Producer|Consumer|AdminClient)\(")


def test_every_kafka_client_in_the_services_takes_the_security_settings() -> None:
    """Each place that builds an aiokafka client passes `client_kwargs()` (the services' own test harnesses,
    `<service>/testing.py`, talk to the plaintext embedded broker only)."""
    sources = [*REPO_ROOT.glob("libs/*/src/**/*.py"), *REPO_ROOT.glob("services/*/src/**/*.py")]
    places = 0
    for path in sources:
        if path.name == "testing.py" and "services" in path.parts:
            continue
        text = path.read_text()
        for found in KAFKA_CLIENT.finditer(text):
            places += 1
            where = f"{path.relative_to(REPO_ROOT)}:{text.count(chr(10), 0, found.start()) + 1}"
            assert "client_kwargs()" in _arguments(text, found.end()), f"{where}: a Kafka client without the security"
    assert places >= 7  # producer, admin, group consumer, lane, DLQ reader, test reader, ledger watermark


def _arguments(text: str, start: int) -> str:
    depth, at = 1, start
    while depth:
        depth += {"(": 1, ")": -1}.get(text[at], 0)
        at += 1
    return text[start:at]
