"""A local SMTP server that accepts every message and keeps it (aiosmtpd), for dev and tests."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def text(self) -> str:
        """All text parts, decoded (plain and HTML)."""
        parts = []
        for part in self.message.walk():
            if part.get_content_maintype() == "text":
                parts.append(part.get_content())
        return "\n".join(parts)


@dataclass
class _Handler:
    received: list[ReceivedMail] = field(default_factory=list)
    maildir: Path | None = None
    _waiters: list[asyncio.Event] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.received.append(ReceivedMail(str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos], msg))
        if self.maildir is not None:
            self.maildir.mkdir(parents=True, exist_ok=True)
            (self.maildir / f"{len(self.received):06d}.eml").write_bytes(raw)
        for w in self._waiters:
            w.set()
        return "250 Message accepted for delivery"


class SmtpSink:
    """`async with SmtpSink() as sink:` or start()/stop(); `sink.received` lists every message."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, maildir: Path | None = None) -> None:
        from dunning_kit.embedded import free_port

        self.host = host
        self.port = port or free_port()
        self._handler = _Handler(maildir=maildir)
        self._controller = Controller(self._handler, hostname=host, port=self.port, ready_timeout=10)

    @property
    def received(self) -> list[ReceivedMail]:
        return self._handler.received

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    async def __aenter__(self) -> SmtpSink:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self.stop)


# ---------------------------------------------------------------- a lean counting server (benchmarks)

_MAX_LINE = 2048  # RFC 5321 allows 512 octets per command line; be lenient, but bounded
_MAX_MESSAGE = 32 * 1024 * 1024


class _SmtpCounterProtocol(asyncio.Protocol):
    """One SMTP session (RFC 5321) that accepts every message and only counts it.

    The full dialogue over TCP: 220 greeting, EHLO/HELO, MAIL FROM, RCPT TO, DATA with the dot-terminated
    body (354, then 250 once CRLF.CRLF arrives), RSET, NOOP, QUIT; commands out of order get 503, unknown
    ones 500. PIPELINING is advertised (RFC 2920): commands are answered in order from one buffer, so a
    client may send MAIL/RCPT/DATA in one write. Nothing is parsed or stored: this is what a benchmark
    needs to count what a real MTA would have accepted without measuring the MTA.
    """

    def __init__(self, server: SmtpCounter) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.greeted = False
        self.mail_from: bytes | None = None
        self.rcpts = 0
        self.in_data = False
        self.scanned = 0  # how far the DATA terminator search got (restart a little before it)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(b"220 %s ESMTP dunning counting sink\r\n" % self.server.hostname)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        out: list[bytes] = []
        while True:
            if self.in_data:
                # The body ends with CRLF.CRLF; a body that is empty ends with ".CRLF" right after the 354.
                if buf.startswith(b".\r\n"):
                    end, skip = 0, 3
                else:
                    end = buf.find(b"\r\n.\r\n", max(0, self.scanned - 4))
                    skip = 5
                if end < 0:
                    self.scanned = len(buf)
                    if len(buf) > _MAX_MESSAGE:
                        out.append(b"552 message too large\r\n")
                        self._close(out)
                        return
                    break
                del buf[: end + skip]
                self.in_data, self.scanned = False, 0
                self.server.accepted(self.mail_from or b"", self.rcpts)
                self.mail_from, self.rcpts = None, 0
                out.append(b"250 2.0.0 accepted\r\n")
                continue
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > _MAX_LINE:
                    out.append(b"500 5.5.2 line too long\r\n")
                    self._close(out)
                    return
                break
            line = bytes(buf[:eol])
            del buf[: eol + 2]
            reply = self._command(line)
            if reply is None:  # QUIT
                out.append(b"221 2.0.0 bye\r\n")
                self._close(out)
                return
            out.append(reply)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def _command(self, line: bytes) -> bytes | None:
        verb, _, arg = line.partition(b" ")
        verb = verb.upper()
        if verb == b"MAIL":
            if not self.greeted:
                return b"503 5.5.1 send EHLO first\r\n"
            if self.mail_from is not None:
                return b"503 5.5.1 nested MAIL command\r\n"
            if not arg.upper().startswith(b"FROM:"):
                return b"501 5.5.4 syntax: MAIL FROM:<address>\r\n"
            self.mail_from = arg[5:].strip()
            return b"250 2.1.0 OK\r\n"
        if verb == b"RCPT":
            if self.mail_from is None:
                return b"503 5.5.1 need MAIL before RCPT\r\n"
            if not arg.upper().startswith(b"TO:") or b"@" not in arg:
                return b"501 5.5.4 syntax: RCPT TO:<address>\r\n"
            self.rcpts += 1
            return b"250 2.1.5 OK\r\n"
        if verb == b"DATA":
            if not self.rcpts:
                return b"503 5.5.1 need RCPT before DATA\r\n"
            self.in_data = True
            return b"354 end data with <CR><LF>.<CR><LF>\r\n"
        if verb == b"EHLO":
            self.greeted, self.mail_from, self.rcpts = True, None, 0
            return b"250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE %d\r\n250 ENHANCEDSTATUSCODES\r\n" % (
                self.server.hostname,
                _MAX_MESSAGE,
            )
        if verb == b"HELO":
            self.greeted, self.mail_from, self.rcpts = True, None, 0
            return b"250 %s\r\n" % self.server.hostname
        if verb == b"RSET":
            self.mail_from, self.rcpts = None, 0
            return b"250 2.0.0 OK\r\n"
        if verb == b"NOOP":
            return b"250 2.0.0 OK\r\n"
        if verb == b"QUIT":
            return None
        if verb == b"VRFY":
            return b"252 2.1.5 cannot verify, but will accept\r\n"
        return b"500 5.5.2 command not recognised\r\n"

    def _close(self, out: list[bytes]) -> None:
        if self.transport is not None:
            self.transport.write(b"".join(out))
            self.transport.close()
            self.transport = None


class SmtpCounter:
    """A lean SMTP server on an asyncio loop that accepts and counts every message (for benchmarks).

    `await SmtpCounter(port=...).start()`; `count` is the number of messages accepted (250 after the
    dot), `on_accept(n)` is called with each acceptance (e.g. to add to a counter shared by processes).
    `reuse_port=True` lets several processes accept on one port, as a relay's workers would.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reuse_port: bool = False,
        hostname: str = "sink.dunning.local",
        on_accept: Any = None,
    ) -> None:
        from dunning_kit.embedded import free_port

        self.host = host
        self.port = port or free_port()
        self.reuse_port = reuse_port
        self.hostname = hostname.encode()
        self.on_accept = on_accept
        self.count = 0
        self.recipients = 0
        self._server: asyncio.Server | None = None

    def accepted(self, mail_from: bytes, rcpts: int) -> None:
        self.count += 1
        self.recipients += rcpts
        if self.on_accept is not None:
            self.on_accept(1)

    async def start(self) -> SmtpCounter:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _SmtpCounterProtocol(self), host=self.host, port=self.port, reuse_port=self.reuse_port or None
        )
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def __aenter__(self) -> SmtpCounter:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def main() -> None:
    import argparse
    import signal
    import threading

    parser = argparse.ArgumentParser(description="Local SMTP sink: accepts and stores every message")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, default=Path(".run/mail"))
    args = parser.parse_args()
    sink = SmtpSink(port=args.port, maildir=args.maildir).start()
    print(f"SMTP sink listening on 127.0.0.1:{args.port}, storing mail in {args.maildir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    sink.stop()


if __name__ == "__main__":
    main()
