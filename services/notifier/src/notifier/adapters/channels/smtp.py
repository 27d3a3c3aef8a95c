"""Email over SMTP: a pool of open sessions used concurrently, STARTTLS or implicit TLS, AUTH when a user is
set; a plain-text and an HTML part; a Message-ID derived from the idempotency key.

aiosmtplib opens each session (TCP or implicit TLS, EHLO, STARTTLS, AUTH: the parts where a library that
is kept up to date matters). The mail transactions on an open session are then run by `_Session`, a small
protocol on the same transport: MAIL, RCPT and DATA go out in one write when the server offers PIPELINING
(RFC 2920) and one at a time otherwise, and the message is written as built - `build_email` emits CRLF
line endings and no line starting with a dot, so aiosmtplib's per-message regex pass (normalising line
endings, dot-stuffing) had nothing to do and was a fifth of the CPU of a send.

Failure classification: a 4xx reply means the server did not take the message (retry); a 5xx reply to
RCPT is a hard bounce (suppress the address); a timeout or a dropped connection after the transaction
started may have delivered the message, so it is not retried (at most once).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

import aiosmtplib

from notifier.adapters.channels.http import RateLimiter
from notifier.domain.messages import (
    OutboundMessage,
    OutcomeUnknownError,
    PermanentSendError,
    SendError,
    SendReceipt,
    TransientSendError,
)

# A pooled connection idle longer than this gets a NOOP first: servers drop idle sessions, and a failure
# on the first command of a stale session must not be mistaken for an unknown outcome.
_STALE_AFTER_S = 10.0
_HARD_BOUNCE_CODES = {550, 551, 553}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # never in an SMTP command argument (command injection)
_MAX_REPLY_LINE = 4096


@lru_cache(maxsize=1024)
def _parsed(address: str) -> tuple[str, str]:
    """parseaddr, cached: the same few senders are parsed for every message."""
    return parseaddr(address)


def message_id(idempotency_key: str, sender: str) -> str:
    domain = _parsed(sender)[1].rpartition("@")[2] or "dunning.local"
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def _clean(value: str) -> str:
    """No CR/LF in a header value: customer data must never inject a header."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _encoded_words(value: str) -> str:
    """RFC 2047 "B" encoded words (UTF-8), each under 75 characters, folded onto continuation lines.
    A word never splits a character (each must decode on its own), which is why chunks are cut by
    code point and not by byte."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in value:
        n = len(ch.encode())
        if size + n > 39:  # 39 bytes -> 52 base64 characters + 12 of `=?utf-8?b?...?=`: fits "Subject: " + 78
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk:
        words.append("".join(chunk))
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words)


@lru_cache(maxsize=4096)
def _header(value: str) -> str:
    """ASCII as is (up to the 998-octet line limit); anything else as RFC 2047 encoded words. Cached: a
    batch repeats the same subjects and List-Unsubscribe-Post values."""
    value = _clean(value)[:900]
    return value if value.isascii() else _encoded_words(value)


def _address(name: str | None, address: str) -> str:
    address = _clean(address)
    if not name:
        return address
    name = _clean(name)
    if name.isascii():
        return formataddr((name, address))
    return f"{_encoded_words(name)} <{address}>"


def _part(content_type: str, body: str) -> bytes:
    encoded = base64.encodebytes(body.encode()).replace(b"\n", b"\r\n")
    return (
        f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'.encode() + encoded
    )


def build_email(message: OutboundMessage, default_sender: str, now: datetime | None = None) -> bytes:
    """The raw RFC 5322 message: headers, then a text/plain part and, with HTML, multipart/alternative.

    Written out directly: the stdlib `email` classes re-parse and re-fold every header and were most of
    the CPU of a send. Header values are cleaned of CR/LF (customer data never injects a header) and
    non-ASCII goes out as RFC 2047 encoded words; bodies as base64 UTF-8. So every line ends in CRLF and
    none starts with a dot: the bytes go into DATA as they are (see `_Session.send`).
    """
    from_name, from_address = _parsed(message.sender.email or default_sender)
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


def smtp_data(raw: bytes) -> bytes:
    """What goes on the wire after DATA: CRLF line endings, dot-stuffed (RFC 5321 4.5.2), and the
    terminating dot. `build_email` output needs neither fix, so this is two scans, not a rewrite."""
    if b"\n." in raw or raw.startswith(b"."):
        raw = re.sub(rb"(?m)^\.", b"..", raw)
    bare = raw.replace(b"\r\n", b"")
    if b"\n" in bare or b"\r" in bare:  # a bare LF or CR somewhere: normalise as aiosmtplib would
        raw = re.sub(rb"\r\n|\n|\r(?!\n)", b"\r\n", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw + b".\r\n"


_STAGES = ("MAIL", "RCPT", "DATA")


def _accepted(stage: str, code: int) -> bool:
    return code == 354 if stage == "DATA" else code // 100 == 2


class _Refused(Exception):
    """The server answered a command of the transaction with an error code (the session stays usable)."""

    def __init__(self, stage: str, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.stage, self.code, self.text = stage, code, text


class _Session(asyncio.Protocol):
    """Mail transactions on a session aiosmtplib opened (and secured and authenticated).

    Replies are parsed into a queue as they arrive, so pipelined commands get their replies in order."""

    def __init__(self, transport: asyncio.Transport, pipelining: bool, smtputf8: bool, timeout: float) -> None:
        self.transport: asyncio.Transport | None = transport
        self.pipelining = pipelining
        self.smtputf8 = smtputf8
        self.timeout = timeout
        self.last_used = time.monotonic()
        self._buffer = bytearray()
        self._lines: list[bytes] = []  # continuation lines of a multi-line reply so far
        self._replies: deque[tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None

    @property
    def unsolicited(self) -> bool:
        return bool(self._replies)

    @property
    def is_connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and self._lost is None

    # ------------------------------------------------------------ asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        while (eol := buf.find(b"\n")) >= 0:
            line = bytes(buf[: eol + 1])
            del buf[: eol + 1]
            try:
                code = int(line[:3])
            except ValueError:
                self._fail(ConnectionError(f"malformed SMTP reply: {line[:80]!r}"))
                return
            self._lines.append(line[4:].strip())
            if line[3:4] != b"-":  # the last line of the reply
                self._replies.append((code, b" ".join(self._lines).decode("utf-8", "replace")))
                self._lines = []
        if len(buf) > _MAX_REPLY_LINE:
            self._fail(ConnectionError("SMTP reply line too long"))
            return
        self._wake()

    def eof_received(self) -> bool:
        self._fail(ConnectionResetError("the SMTP server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionResetError("connection lost")
        self.transport = None
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        self._lost = exc
        self.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # ------------------------------------------------------------ commands

    async def _reply(self) -> tuple[int, str]:
        while not self._replies:
            if self._lost is not None:
                raise ConnectionResetError(str(self._lost)) from self._lost
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._replies.popleft()

    def _write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection lost")
        self.transport.write(data)

    async def command(self, line: bytes) -> tuple[int, str]:
        self._write(line + b"\r\n")
        async with asyncio.timeout(self.timeout):
            return await self._reply()

    async def send(self, sender: str, recipient: str, raw: bytes) -> str:
        """One transaction: MAIL, RCPT, DATA, the message. Returns the final 250 reply; raises _Refused
        (after RSET) when the server says no, OSError/TimeoutError when the session broke."""
        if _CONTROL.search(sender) or _CONTROL.search(recipient):
            raise ValueError("an address contains a control character")
        utf8 = not (sender.isascii() and recipient.isascii())
        if utf8 and not self.smtputf8:
            raise _Refused("MAIL", 553, "a non-ASCII address needs SMTPUTF8, which the server does not offer")
        commands = [
            f"MAIL FROM:<{sender}>{' SMTPUTF8' if utf8 else ''}\r\n".encode(),
            f"RCPT TO:<{recipient}>\r\n".encode(),
            b"DATA\r\n",
        ]
        async with asyncio.timeout(self.timeout):
            if self.pipelining:
                self._write(b"".join(commands))
                replies = [await self._reply() for _ in commands]
            else:  # each command waits for its reply; stop at the first refusal
                replies = []
                for stage, cmd in zip(_STAGES, commands, strict=True):
                    self._write(cmd)
                    replies.append(reply := await self._reply())
                    if not _accepted(stage, reply[0]):
                        break
        for stage, (code, text) in zip(_STAGES, replies, strict=False):
            if not _accepted(stage, code):
                if replies[-1][0] == 354:
                    # A pipelining server took DATA after refusing MAIL or RCPT and now waits for a
                    # message we will not send: this session cannot be reused.
                    self.close()
                else:
                    await self._reset()
                raise _Refused(stage, code, text)
        self._write(smtp_data(raw))
        async with asyncio.timeout(self.timeout):
            code, text = await self._reply()
        if code // 100 != 2:
            await self._reset()
            raise _Refused("DATA", code, text)
        return text

    async def _reset(self) -> None:
        """After a refused transaction, RSET so the pooled session can carry the next message."""
        try:
            code, _ = await self.command(b"RSET")
        except (OSError, TimeoutError):
            self.close()
            return
        if code // 100 != 2:
            self.close()

    async def quit(self) -> None:
        try:
            await self.command(b"QUIT")
        except (OSError, TimeoutError):
            pass
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


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
        self._idle: list[_Session] = []

    async def _connect(self) -> _Session:
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
            if client.last_ehlo_response is None:  # no STARTTLS/AUTH asked for it: say EHLO (or HELO)
                await client.ehlo()
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise PermanentSendError(f"smtp: authentication failed ({exc.code})", provider="smtp") from exc
        except aiosmtplib.SMTPHeloError:
            try:
                await client.helo()
            except (aiosmtplib.SMTPException, OSError) as exc:
                client.close()
                raise TransientSendError(
                    f"smtp: {self.host}:{self.port} refused HELO ({exc})", provider="smtp"
                ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise TransientSendError(
                f"smtp: cannot connect to {self.host}:{self.port} ({exc})", provider="smtp"
            ) from exc
        transport = client.transport
        if transport is None or not client.is_connected:
            raise TransientSendError(f"smtp: {self.host}:{self.port} closed the session", provider="smtp")
        session = _Session(
            transport,  # type: ignore[arg-type]
            pipelining=client.supports_extension("pipelining"),
            smtputf8=client.supports_extension("smtputf8"),
            timeout=self.timeout,
        )
        # From here on the transactions are ours (see the module docstring); aiosmtplib is done with it.
        transport.set_protocol(session)
        return session

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[_Session]:
        async with self._slots:
            session = None
            while self._idle and session is None:
                candidate = self._idle.pop()
                if not candidate.is_connected or candidate.unsolicited:
                    # A reply nobody asked for (typically "421 closing" before the server hangs up) would be
                    # paired with our MAIL: never start a transaction on such a session.
                    candidate.close()
                    continue
                if time.monotonic() - candidate.last_used > _STALE_AFTER_S:
                    try:
                        code, _ = await candidate.command(b"NOOP")
                    except (OSError, TimeoutError):
                        code = 0
                    if code // 100 != 2:
                        candidate.close()
                        continue
                session = candidate
            if session is None:
                session = await self._connect()
            healthy = False
            try:
                yield session
                healthy = True
            except SendError:
                healthy = True  # refused and RSET (or closed, which is_connected tells below)
                raise
            finally:
                # Anything else (a cancellation mid-transaction) leaves the session in an unknown state.
                session.last_used = time.monotonic()
                if healthy and session.is_connected:
                    self._idle.append(session)
                else:
                    session.close()

    async def send(self, message: OutboundMessage) -> SendReceipt:
        if self.limiter is not None:
            await self.limiter.acquire()
        raw = build_email(message, self.sender)
        sender = _parsed(message.sender.email or self.sender)[1]
        async with self._session() as session:
            try:
                await session.send(sender, message.recipient, raw)
            except _Refused as exc:
                if exc.stage == "RCPT":
                    if exc.code >= 500:
                        raise PermanentSendError(
                            f"smtp: recipient refused ({exc.code} {exc.text})",
                            hard_bounce=exc.code in _HARD_BOUNCE_CODES,
                            provider="smtp",
                        ) from exc
                    raise TransientSendError(
                        f"smtp: recipient deferred ({exc.code} {exc.text})", provider="smtp"
                    ) from exc
                # Sender refused, DATA refused, or the message refused: the server said no.
                if exc.code >= 500:
                    raise PermanentSendError(f"smtp: rejected ({exc.code} {exc.text})", provider="smtp") from exc
                raise TransientSendError(f"smtp: deferred ({exc.code} {exc.text})", provider="smtp") from exc
            except ValueError as exc:
                raise PermanentSendError(f"smtp: {exc}", provider="smtp") from exc
            except (OSError, TimeoutError) as exc:
                session.close()
                raise OutcomeUnknownError(
                    f"smtp: {type(exc).__name__} during the transaction; outcome unknown, not retried (at most once)",
                    provider="smtp",
                ) from exc
        return SendReceipt(provider=self.name, provider_message_id=message_id(message.idempotency_key, sender))

    async def aclose(self) -> None:
        while self._idle:
            await self._idle.pop().quit()
