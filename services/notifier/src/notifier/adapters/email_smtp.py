"""Email over SMTP (aiosmtplib)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib


class SmtpEmail:
    def __init__(
        self, host: str, port: int, sender: str, username: str | None, password: str | None, starttls: bool
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls

    async def send(self, to: str, subject: str, text: str, idempotency_key: str) -> str:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg_id = make_msgid(idstring=idempotency_key.replace(":", ".")[:60], domain="dunning.local")
        msg["Message-ID"] = msg_id
        msg.set_content(text)
        await aiosmtplib.send(
            msg,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            start_tls=self.starttls,
            timeout=15,
        )
        return msg_id
