"""Fixtures of the Kafka security tests: a throwaway PKI, and the TLS terminator in front of a fresh broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.pki import Pki, make_pki
from tests.security.terminator import TlsTerminator


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("kafka-pki"))


def tls_settings(pki: Pki, *, mutual: bool, ca: Path | None = None) -> dict[str, object]:
    """The services' Kafka settings for the terminator (the test CA; the client certificate for mutual TLS)."""
    settings: dict[str, object] = {"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": ca or pki.ca}
    if mutual:
        settings |= {"kafka_ssl_cert_file": pki.client.cert, "kafka_ssl_key_file": pki.client.key}
    return settings


@pytest.fixture
def mutual_tls_terminator(pki: Pki, tmp_path: Path) -> Iterator[TlsTerminator]:
    terminator = TlsTerminator(pki, tmp_path / "stunnel", mutual=True).start()
    try:
        yield terminator
    finally:
        terminator.stop()
