"""The walking skeleton with every Kafka client on TLS, and on mutual TLS, through a real TLS terminator.

The terminator's port is the only one the broker advertises, so a client that ignored the security settings
(a producer, a consumer group, a priority lane, the topic admin, the notifier's ledger watermark, the DLQ reader)
could not take part: stunnel would log its plaintext as a refused handshake, and the reminder would not arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.dlq import read_dead_letters
from dunning_kit.services import SERVICES
from dunning_kit.testing import BrokerBackend, Platform
from tests.e2e.test_walking_skeleton import (
    test_due_date_reminder_reaches_the_smtp_sink as due_date_reminder_reaches_the_smtp_sink,
)
from tests.security.conftest import tls_settings
from tests.security.pki import Pki
from tests.security.terminator import TlsTerminator

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["tls", "mutual-tls"])
def terminator(request: pytest.FixtureRequest, pki: Pki, tmp_path: Path) -> Iterator[TlsTerminator]:
    terminator = TlsTerminator(pki, tmp_path / "stunnel", mutual=request.param == "mutual-tls").start()
    try:
        yield terminator
    finally:
        terminator.stop()


@pytest.fixture
def broker(terminator: TlsTerminator) -> BrokerBackend:
    """The platform fixture's broker, seen through the terminator: only its TLS port is known to anyone."""
    return BrokerBackend(terminator.bootstrap_servers, terminator.stop, None)


@pytest.fixture
def platform_overrides(smtp_sink: SmtpSink, terminator: TlsTerminator, pki: Pki) -> dict[str, dict[str, object]]:
    kafka = tls_settings(pki, mutual=terminator.mutual)
    smtp = {"smtp_host": smtp_sink.host, "smtp_port": smtp_sink.port}
    return {s.name: {**kafka, **(smtp if s.name == "notifier" else {})} for s in SERVICES}


async def test_walking_skeleton_over_tls_through_the_terminator(
    platform: Platform, smtp_sink: SmtpSink, terminator: TlsTerminator, pki: Pki
) -> None:
    expected = "SSL, mutual TLS" if terminator.mutual else "SSL, server-authenticated TLS"
    assert {rt.kafka_security.describe() for rt in platform.runtimes} == {expected}

    await due_date_reminder_reaches_the_smtp_sink(platform, smtp_sink)

    security = platform.runtimes[0].kafka_security
    nothing = await read_dead_letters(terminator.bootstrap_servers, "policy-engine.ledger", security)
    assert nothing.letters == [], "the DLQ command reads over TLS too"
    assert terminator.refused_handshakes() == [], "a client spoke plaintext, or failed TLS, to the TLS port"
    if terminator.mutual:
        assert terminator.accepted_client_certificates(), "stunnel checked the client certificate"
        assert all("CN=dunning-client" in line for line in terminator.accepted_client_certificates())
