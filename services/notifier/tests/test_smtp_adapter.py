"""The SMTP adapter against a real aiosmtpd server: STARTTLS with AUTH, pooled connections used
concurrently, and the failure classification that at-most-once depends on."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import email.policy
import re
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

from dunning_kit.devfakes.smtp_sink import SmtpCounter
from dunning_kit.embedded import free_port
from dunning_kit.testing import poll_until
from notifier.adapters.channels.smtp import SmtpEmail, build_email, smtp_data
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


async def test_pipelined_sessions_carry_messages_and_survive_a_refusal() -> None:
    """Against a server that offers PIPELINING, MAIL/RCPT/DATA go out in one write; a refused recipient
    (the DATA after it is refused too) is classified and the pooled session, reset, carries on."""
    async with SmtpCounter() as server:
        smtp = SmtpEmail(server.host, server.port, "ar@example.com", pool_size=3)
        await asyncio.gather(*(smtp.send(message(f"ap{i}@example.com", i)) for i in range(30)))
        assert server.count == 30
        assert len(smtp._idle) <= 3 and all(s.pipelining for s in smtp._idle)
        with pytest.raises(PermanentSendError, match="recipient refused \\(501") as refused:
            await smtp.send(message("no-at-sign"))  # a 501 to RCPT: not a hard bounce
        assert not refused.value.hard_bounce
        assert (await smtp.send(message("ok@example.com", 99))).provider_message_id
        assert server.count == 31
        await smtp.aclose()


async def test_a_connection_dropped_after_data_is_an_unknown_outcome_never_retried() -> None:
    """The server hangs up once the message is on the wire: it may have been delivered (at most once)."""

    server, port = await _scripted_server(b"flaky", after_data=None)
    smtp = SmtpEmail("127.0.0.1", port, "ar@example.com", pool_size=1)
    with pytest.raises(PermanentSendError, match="outcome unknown") as unknown:
        await smtp.send(message("ap@example.com"))
    assert unknown.value.permanent and not unknown.value.hard_bounce
    assert smtp._idle == [], "a broken session is not pooled"
    await smtp.aclose()
    server.close()


def test_data_is_dot_stuffed_and_crlf_terminated() -> None:
    assert smtp_data(b"a\r\n.b\r\n") == b"a\r\n..b\r\n.\r\n"
    assert smtp_data(b".x\nend") == b"..x\r\nend\r\n.\r\n"
    raw = build_email(message("ap@example.com"), "ar@example.com")
    assert smtp_data(raw) == raw + b".\r\n", "what build_email writes goes on the wire unchanged"


def test_non_ascii_headers_are_encoded_words_the_stdlib_decodes() -> None:
    subject = "Zahlungserinnerung: Rechnungen 2026-00001, 2026-00002 über 4.820,00 € — bitte begleichen Sie äöü"
    msg = dataclasses.replace(message("ap@example.com"), subject=subject, recipient_name="Jörg Müller")
    raw = build_email(msg, "Buchhaltung Ärger <ar@example.com>")
    words = re.findall(rb"=\?utf-8\?b\?[^?]*\?=", raw)
    assert len(words) > 3 and all(len(w) <= 75 for w in words), "RFC 2047: encoded words of at most 75 characters"
    assert all(len(line) <= 78 for line in raw.split(b"\r\n") if line.startswith((b"Subject", b" =?")))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == subject
    assert parsed["To"].addresses[0].display_name == "Jörg Müller"
    assert parsed["From"].addresses[0].display_name == "ACME AR"


async def test_a_pooled_session_the_server_closed_is_not_reused_for_the_next_message() -> None:
    """A server that says 421 and hangs up while the session is idle in the pool: the next message opens a
    new session instead of being written into the closing one (which would be an unknown outcome)."""
    sessions: list[asyncio.StreamWriter] = []
    server, port = await _scripted_server(b"moody", after_data=b"250 queued\r\n", sessions=sessions)
    smtp = SmtpEmail("127.0.0.1", port, "ar@example.com", pool_size=1)
    await smtp.send(message("ap@example.com", 1))
    sessions[0].write(b"421 4.4.2 idle too long, closing\r\n")
    await sessions[0].drain()
    await poll_until(lambda: _has_unsolicited(smtp), timeout=5, what="the 421 to arrive")
    assert (await smtp.send(message("ap@example.com", 2))).provider_message_id
    assert len(sessions) == 2, "the second message went over a new session"
    await smtp.aclose()
    server.close()


async def _has_unsolicited(smtp: SmtpEmail) -> bool:
    return any(s.unsolicited for s in smtp._idle)


async def _scripted_server(
    name: bytes, after_data: bytes | None, sessions: list[asyncio.StreamWriter] | None = None
) -> tuple[asyncio.Server, int]:
    """A minimal PIPELINING SMTP server: 250 to every command; after a message's dot it replies `after_data`,
    or hangs up without a reply when that is None (an outcome the client cannot know)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if sessions is not None:
            sessions.append(writer)
        writer.write(b"220 %s ESMTP\r\n" % name)
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-%s\r\n250 PIPELINING\r\n" % name)
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                await reader.readuntil(b"\r\n.\r\n")
                if after_data is None:
                    writer.close()
                    return
                writer.write(after_data)
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]
