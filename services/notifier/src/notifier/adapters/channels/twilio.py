"""SMS and voice over the Twilio REST API (httpx; the official SDK would pull in requests/aiohttp).

Messages: POST /2010-04-01/Accounts/{sid}/Messages.json (To, From | MessagingServiceSid, Body, StatusCallback)
Calls:    POST /2010-04-01/Accounts/{sid}/Calls.json    (To, From, Twiml, StatusCallback, StatusCallbackEvent)
Twilio takes no idempotency key on these endpoints, so a timeout after the request went out, a connection lost
mid-request and a 5xx (Twilio may fail after it queued the message) are not retried: the delivery ends `unknown`.
429, connection refused and 4xx are answers that nothing was created.
"""

from __future__ import annotations

import asyncio
import base64
from xml.sax.saxutils import escape

import httpx

from dunning_kit.http_deadline import within_deadline
from notifier.adapters.channels.http import (
    DEFAULT_DEADLINE_SECONDS,
    RateLimiter,
    json_or_empty,
    provider_timeout,
    retry_after_seconds,
)
from notifier.domain.messages import (
    OutboundMessage,
    OutcomeUnknownError,
    PermanentSendError,
    SendReceipt,
    TransientSendError,
)
from notifier.domain.rendering import babel_locale

# Error codes that mean "this number can never receive this": suppress it instead of trying again.
# 21211 invalid To, 21214 not reachable, 21217 not a valid phone number, 21610 recipient replied STOP,
# 21612 cannot route to this number, 21614 not a mobile number.
HARD_BOUNCE_CODES = {21211, 21214, 21217, 21610, 21612, 21614}

# Twilio <Say> voices speak these; anything else is read in English.
_SAY_LANGUAGES = {"en": "en-US", "de": "de-DE", "fr": "fr-FR", "es": "es-ES", "it": "it-IT", "nl": "nl-NL"}


class TwilioClient:
    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: str,
        limiter: RateLimiter,
        timeout: float = 10.0,
        max_connections: int = 10,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        self.account_sid = account_sid
        self.deadline = deadline
        self.auth_token = auth_token
        self.limiter = limiter
        # At most as many requests in httpx as it has connections: httpcore re-scans its whole queue of
        # waiting requests on every release, so a batch of 500 queued in it costs O(n^2) CPU.
        self.slots = asyncio.Semaphore(max_connections)
        basic = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            # Basic auth as a fixed header: the same bytes httpx's auth flow would add, without running that
            # flow (a generator and a request copy) for every message.
            headers={"Authorization": f"Basic {basic}"},
            timeout=provider_timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def aclose(self) -> None:
        await self.http.aclose()


async def _create(client: TwilioClient, resource: str, form: dict[str, str]) -> dict[str, object]:
    """POST and turn Twilio's JSON error body (code, message) into a classified failure."""
    await client.limiter.acquire()
    url = f"/2010-04-01/Accounts/{client.account_sid}/{resource}.json"
    try:
        async with client.slots:
            response = await within_deadline(client.http.post(url, data=form), client.deadline)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise TransientSendError(f"twilio: cannot connect ({type(exc).__name__})", provider="twilio") from exc
    except httpx.TransportError as exc:
        raise OutcomeUnknownError(
            f"twilio: {type(exc).__name__} after the request was sent; outcome unknown, not retried (at most once)",
            provider="twilio",
        ) from exc
    if response.status_code < 300:
        return dict(json_or_empty(response))
    body = json_or_empty(response)
    code = body.get("code")
    message = body.get("message") or response.text[:200]
    if response.status_code == 429:
        raise TransientSendError(
            f"twilio: rate limited (429, code {code})", retry_after=retry_after_seconds(response), provider="twilio"
        )
    if response.status_code >= 500:
        raise OutcomeUnknownError(
            f"twilio: server error {response.status_code}: {message}; Twilio takes no idempotency key and may have "
            "queued it: outcome unknown, not retried (at most once)",
            provider="twilio",
        )
    raise PermanentSendError(
        f"twilio error {code}: {message}",
        hard_bounce=isinstance(code, int) and code in HARD_BOUNCE_CODES,
        provider="twilio",
    )


class TwilioSms:
    name = "twilio"

    def __init__(self, client: TwilioClient) -> None:
        self.client = client

    async def send(self, message: OutboundMessage) -> SendReceipt:
        form = {"To": message.recipient, "Body": message.sms or message.text}
        if message.sender.messaging_service_sid:
            form["MessagingServiceSid"] = message.sender.messaging_service_sid
        else:
            form["From"] = message.sender.phone or ""
        if message.status_callback_url:
            form["StatusCallback"] = message.status_callback_url
        body = await _create(self.client, "Messages", form)
        return SendReceipt(provider=self.name, provider_message_id=str(body.get("sid") or ""))


def twiml_for(message: OutboundMessage) -> str:
    """The call reads the reminder twice (people miss the start of a call), then hangs up."""
    language = _SAY_LANGUAGES.get(babel_locale(message.locale).language, "en-US")
    spoken = escape(" ".join((message.voice or message.text).split()))
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f'<Say language="{language}">{spoken}</Say><Pause length="1"/>'
        f'<Say language="{language}">{spoken}</Say></Response>'
    )


class TwilioVoice:
    name = "twilio"

    def __init__(self, client: TwilioClient) -> None:
        self.client = client

    async def send(self, message: OutboundMessage) -> SendReceipt:
        form = {"To": message.recipient, "From": message.sender.phone or "", "Twiml": twiml_for(message)}
        if message.status_callback_url:
            form["StatusCallback"] = message.status_callback_url
            form["StatusCallbackEvent"] = "completed"
            form["StatusCallbackMethod"] = "POST"
        body = await _create(self.client, "Calls", form)
        return SendReceipt(provider=self.name, provider_message_id=str(body.get("sid") or ""))
