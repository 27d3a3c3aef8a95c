"""Email over the SendGrid v3 Mail Send API: POST /v3/mail/send (Bearer), 202 with X-Message-Id.

`custom_args.delivery_id` comes back on every event-webhook event, which is how receipts find their
delivery. SendGrid takes no idempotency key, so a timeout after the request went out, or a 5xx, is not retried:
the delivery ends `unknown` (SendGrid has no API to look a message up by our delivery id before its events).
"""

from __future__ import annotations

import asyncio
from email.utils import parseaddr

import httpx

from notifier.adapters.channels.http import DEFAULT_DEADLINE_SECONDS, RateLimiter, call, provider_timeout
from notifier.domain.messages import OutboundMessage, SendReceipt


class SendGridEmail:
    name = "sendgrid"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        limiter: RateLimiter,
        timeout: float = 10.0,
        max_connections: int = 10,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        self.limiter = limiter
        self.deadline = deadline
        self.slots = asyncio.Semaphore(max_connections)  # see http.call
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key or ''}"},
            timeout=provider_timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def payload(self, message: OutboundMessage) -> dict[str, object]:
        name, address = parseaddr(message.sender.email or "")
        content = [{"type": "text/plain", "value": message.text}]
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        body: dict[str, object] = {
            "personalizations": [
                {
                    "to": [
                        {
                            "email": message.recipient,
                            **({"name": message.recipient_name} if message.recipient_name else {}),
                        }
                    ]
                }
            ],
            "from": {
                "email": address,
                **({"name": message.sender.email_name or name} if (message.sender.email_name or name) else {}),
            },
            "subject": message.subject,
            "content": content,
            "custom_args": {"delivery_id": message.delivery_id, "tenant_id": message.tenant_id},
            "categories": ["dunning", message.step_id[:255]],
        }
        if message.sender.reply_to:
            body["reply_to"] = {"email": message.sender.reply_to}
        if message.headers:
            body["headers"] = dict(message.headers)
        return body

    async def send(self, message: OutboundMessage) -> SendReceipt:
        response = await call(
            self.http,
            "sendgrid",
            "POST",
            "/v3/mail/send",
            idempotent=False,
            limiter=self.limiter,
            slots=self.slots,
            deadline=self.deadline,
            json=self.payload(message),
        )
        return SendReceipt(provider=self.name, provider_message_id=response.headers.get("x-message-id"))

    async def aclose(self) -> None:
        await self.http.aclose()
