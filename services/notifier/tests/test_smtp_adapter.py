"""The SMTP adapter against a real aiosmtpd server: STARTTLS with AUTH, pooled connections used
concurrently, and the failure classification that at-most-once depends on."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dunning_kit.embedded import free_port
from notifier.adapters.channels.smtp import SmtpEmail
from notifier.domain.messages import OutboundMessage, PermanentSendError, Sender, TransientSendError


class Recorder:
    def __init__(self) -> None:
        self.sessions: set[int] = set()
        self.messages: list[tuple[str, list[str], bytes, bool, Any]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 <gone@example.com>: user unknown"
        if address.startswith("busy@"):
            return "451 4.3.0 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sessions.add(id(session))
        tls = session.ssl is not None
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content, tls, session.auth_data))
        return "250 accepted"


def _self_signed(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"mailer", b"s3cret")
    return AuthResult(success=ok, auth_data=auth_data)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(
        recorder, hostname="127.0.0.1", port=port, tls_context=_self_signed(tmp_path), require_starttls=True,
        authenticator=_authenticator, auth_required=True, auth_require_tls=True, ready_timeout=10,
    )  # fmt: skip
    controller.start()
    yield recorder, port
    controller.stop()


def message(to: str, n: int = 0) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=f"00000000-0000-0000-0000-{n:012d}", idempotency_key=f"acme:C-1:S-{n}:email", tenant_id="acme",
        customer_id="C-1", step_id=f"S-{n}", channel="email", recipient=to, recipient_name="AP", locale="en",
        subject="Payment reminder", text="Please pay.", html="<p>Please pay.</p>",
        sender=Sender(email="ar@acme.example", email_name="ACME AR"), headers={"List-Unsubscribe": "<https://u.example/x>"},
    )  # fmt: skip


async def test_starttls_and_auth_are_used_and_connections_are_pooled(tls_server: tuple[Recorder, int]) -> None:
    recorder, port = tls_server
    smtp = SmtpEmail(
        "127.0.0.1", port, "ar@example.com", "mailer", "s3cret", starttls=True, validate_certs=False, pool_size=2
    )
    receipts = await asyncio.gather(*(smtp.send(message(f"ap{i}@example.com", i)) for i in range(12)))
    await smtp.aclose()
    assert len(recorder.messages) == 12
    assert all(tls for _f, _r, _c, tls, _l in recorder.messages), "every message went over TLS"
    assert {login.login for *_x, login in recorder.messages} == {b"mailer"}
    assert len(recorder.sessions) <= 2, "12 messages over at most 2 pooled connections"
    assert len({r.provider_message_id for r in receipts}) == 12
    raw = recorder.messages[0][2]
    assert b"List-Unsubscribe: <https://u.example/x>" in raw and b"Auto-Submitted: auto-generated" in raw


async def test_refusals_are_classified_and_the_pooled_session_survives_them(tls_server: tuple[Recorder, int]) -> None:
    _recorder, port = tls_server
    smtp = SmtpEmail(
        "127.0.0.1", port, "ar@example.com", "mailer", "s3cret", starttls=True, validate_certs=False, pool_size=1
    )
    with pytest.raises(PermanentSendError) as gone:
        await smtp.send(message("gone@example.com"))
    assert gone.value.hard_bounce and "550" in gone.value.reason
    with pytest.raises(TransientSendError, match="451"):
        await smtp.send(message("busy@example.com"))
    # The pooled session survives a refusal (RSET) and carries the next message.
    assert (await smtp.send(message("ok@example.com"))).provider_message_id
    await smtp.aclose()
    refused = SmtpEmail("127.0.0.1", free_port(), "ar@example.com")
    with pytest.raises(TransientSendError, match="cannot connect"):
        await refused.send(message("ap@example.com"))
