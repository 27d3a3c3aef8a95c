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
