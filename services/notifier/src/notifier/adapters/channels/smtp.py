"""Email over SMTP (aiosmtplib): a pool of open connections used concurrently, STARTTLS or implicit TLS,
AUTH when a user is set; a plain-text and an HTML part; a Message-ID derived from the idempotency key.

Failure classification: a 4xx reply means the server did not take the message (retry); a 5xx reply to
RCPT is a hard bounce (suppress the address); a timeout or a dropped connection after DATA started may
have delivered the message, so it is not retried (at most once).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr

import aiosmtplib

from notifier.adapters.channels.http import RateLimiter
from notifier.domain.messages import OutboundMessage, PermanentSendError, SendError, SendReceipt, TransientSendError

# A pooled connection idle longer than this gets a NOOP first: servers drop idle sessions, and a failure
# on the first command of a stale session must not be mistaken for an unknown outcome.
_STALE_AFTER_S = 10.0
_HARD_BOUNCE_CODES = {550, 551, 553}


def message_id(idempotency_key: str, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "dunning.local"
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def build_email(message: OutboundMessage, default_sender: str, now: datetime | None = None) -> EmailMessage:
    sender = message.sender.email or default_sender
    if message.sender.email_name:
        sender = formataddr((message.sender.email_name, parseaddr(sender)[1]))
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = formataddr((message.recipient_name, message.recipient)) if message.recipient_name else message.recipient
    msg["Subject"] = message.subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id(message.idempotency_key, sender)
    # Automated mail: tells auto-responders not to answer (RFC 3834).
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Dunning-Delivery-Id"] = message.delivery_id
    if message.sender.reply_to:
        msg["Reply-To"] = message.sender.reply_to
    for name, value in message.headers.items():
        msg[name] = value
    msg.set_content(message.text)
    if message.html:
        msg.add_alternative(message.html, subtype="html")
    return msg


class _Connection:
    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.last_used = time.monotonic()


class SmtpEmail:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_tls: bool = False,
        validate_certs: bool = True,
        timeout: float = 15.0,
        pool_size: int = 8,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.use_tls = use_tls
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.limiter = limiter
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            # False, not None: never upgrade opportunistically when the operator did not ask for it.
            start_tls=self.starttls if not self.use_tls else False,
            validate_certs=self.validate_certs,
            timeout=self.timeout,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise PermanentSendError(f"smtp: authentication failed ({exc.code})", provider="smtp") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientSendError(
                f"smtp: cannot connect to {self.host}:{self.port} ({exc})", provider="smtp"
            ) from exc
        return _Connection(client)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        async with self._slots:
            conn = None
            while self._idle and conn is None:
                candidate = self._idle.pop()
                if not candidate.client.is_connected:
                    continue
                if time.monotonic() - candidate.last_used > _STALE_AFTER_S:
                    try:
                        await candidate.client.noop()
                    except (aiosmtplib.SMTPException, OSError):
                        candidate.client.close()
                        continue
                conn = candidate
            if conn is None:
                conn = await self._connect()
            healthy = False
            try:
                yield conn
                healthy = True
            except SendError:
                healthy = True  # refused and RSET (or closed, which is_connected tells below)
                raise
            finally:
                conn.last_used = time.monotonic()
                if healthy and conn.client.is_connected:
                    self._idle.append(conn)
                else:
                    conn.client.close()

    async def send(self, message: OutboundMessage) -> SendReceipt:
        if self.limiter is not None:
            await self.limiter.acquire()
        msg = build_email(message, self.sender)
        async with self._connection() as conn:
            try:
                errors, _reply = await conn.client.send_message(msg)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                await _reset(conn)
                refused = exc.recipients[0] if exc.recipients else None
                code = refused.code if refused else 550
                text = refused.message if refused else str(exc)
                if code >= 500:
                    raise PermanentSendError(
                        f"smtp: recipient refused ({code} {text})",
                        hard_bounce=code in _HARD_BOUNCE_CODES,
                        provider="smtp",
                    ) from exc
                raise TransientSendError(f"smtp: recipient deferred ({code} {text})", provider="smtp") from exc
            except aiosmtplib.SMTPResponseException as exc:
                # Sender refused, DATA refused, or any other reply code: the server said no.
                await _reset(conn)
                if exc.code >= 500:
                    raise PermanentSendError(f"smtp: rejected ({exc.code} {exc.message})", provider="smtp") from exc
                raise TransientSendError(f"smtp: deferred ({exc.code} {exc.message})", provider="smtp") from exc
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
                conn.client.close()
                raise PermanentSendError(
                    f"smtp: {type(exc).__name__} during the transaction; outcome unknown, not retried (at most once)",
                    provider="smtp",
                ) from exc
            if errors:
                code, text = next(iter(errors.values()))
                raise PermanentSendError(f"smtp: recipient refused ({code} {text})", provider="smtp")
        return SendReceipt(provider=self.name, provider_message_id=str(msg["Message-ID"]))

    async def aclose(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            try:
                await conn.client.quit()
            except (aiosmtplib.SMTPException, OSError):
                conn.client.close()


async def _reset(conn: _Connection) -> None:
    """After a refused transaction, RSET so the pooled session can carry the next message."""
    try:
        await conn.client.rset()
    except (aiosmtplib.SMTPException, OSError):
        conn.client.close()
