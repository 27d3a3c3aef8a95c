"""Email over SMTP (aiosmtplib): a pool of open connections used concurrently, STARTTLS or implicit TLS,
AUTH when a user is set; a plain-text and an HTML part; a Message-ID derived from the idempotency key.

Failure classification: a 4xx reply means the server did not take the message (retry); a 5xx reply to
RCPT is a hard bounce (suppress the address); a timeout or a dropped connection after DATA started may
have delivered the message, so it is not retried (at most once).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.header import Header
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


def _clean(value: str) -> str:
    """No CR/LF in a header value: customer data must never inject a header."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _header(value: str) -> str:
    """ASCII as is (up to the 998-octet line limit); anything else as RFC 2047 encoded words."""
    value = _clean(value)[:900]
    return value if value.isascii() else Header(value, "utf-8", maxlinelen=76).encode()


def _address(name: str | None, address: str) -> str:
    address = _clean(address)
    if not name:
        return address
    name = _clean(name)
    if name.isascii():
        return formataddr((name, address))
    return f"{Header(name, 'utf-8').encode()} <{address}>"


def _part(content_type: str, body: str) -> bytes:
    encoded = base64.encodebytes(body.encode()).replace(b"\n", b"\r\n")
    return (
        f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'.encode() + encoded
    )


def build_email(message: OutboundMessage, default_sender: str, now: datetime | None = None) -> bytes:
    """The raw RFC 5322 message: headers, then a text/plain part and, with HTML, multipart/alternative.

    Written out directly: the stdlib `email` classes re-parse and re-fold every header and were most of
    the CPU of a send. Header values are cleaned of CR/LF (customer data never injects a header) and
    non-ASCII goes out as RFC 2047 encoded words; bodies as base64 UTF-8.
    """
    from_name, from_address = parseaddr(message.sender.email or default_sender)
    headers = [
        ("From", _address(message.sender.email_name or from_name, from_address)),
        ("To", _address(message.recipient_name, message.recipient)),
        ("Subject", _header(message.subject)),
        ("Date", format_datetime(now or datetime.now(UTC))),
        ("Message-ID", message_id(message.idempotency_key, from_address)),
        # Automated mail: tells auto-responders not to answer (RFC 3834).
        ("Auto-Submitted", "auto-generated"),
        ("X-Dunning-Delivery-Id", _clean(message.delivery_id)),
        ("MIME-Version", "1.0"),
    ]
    if message.sender.reply_to:
        headers.append(("Reply-To", _clean(message.sender.reply_to)))
    headers += [(_clean(k), _header(v)) for k, v in message.headers.items()]
    head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode()
    if not message.html:
        return head + _part("text/plain", message.text)
    boundary = f"=_dunning_{secrets.token_hex(12)}"
    return (
        head
        + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
        + f"--{boundary}\r\n".encode() + _part("text/plain", message.text)
        + f"--{boundary}\r\n".encode() + _part("text/html", message.html)
        + f"--{boundary}--\r\n".encode()
    )  # fmt: skip


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
        raw = build_email(message, self.sender)
        sender = parseaddr(message.sender.email or self.sender)[1]
        async with self._connection() as conn:
            try:
                errors, _reply = await conn.client.sendmail(sender, [message.recipient], raw)
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
        return SendReceipt(provider=self.name, provider_message_id=message_id(message.idempotency_key, sender))

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
