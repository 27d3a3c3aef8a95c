"""Webhook: a signed POST to the tenant's endpoint, per the Standard Webhooks spec (`standardwebhooks`).

`webhook-id` is the delivery id, which receivers use to de-duplicate, so a timed-out call may be retried
safely. A 410 means the endpoint is gone: the delivery fails permanently. So does an endpoint that is, or
resolves to, an internal address (the outbound policy checks every connection).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from dunning_kit.outbound import ForbiddenDestination, OutboundPolicy
from notifier.adapters.channels.http import DEFAULT_DEADLINE_SECONDS, RateLimiter, call, provider_timeout
from notifier.domain.messages import OutboundMessage, PermanentSendError, SendReceipt, TransientSendError


class SignedWebhooks:
    name = "webhook"

    def __init__(
        self,
        limiter: RateLimiter,
        timeout: float = 10.0,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
        egress: OutboundPolicy | None = None,
    ) -> None:
        self.limiter = limiter
        self.deadline = deadline  # a tenant's slow endpoint holds a connection (and its slot) at most this long
        self.http = (egress or OutboundPolicy()).client(timeout=provider_timeout(timeout))

    async def send(self, message: OutboundMessage) -> SendReceipt:
        if message.webhook_secret_error:  # a key problem of ours, fixable: retried with backoff, not failed
            raise TransientSendError(f"webhook: {message.webhook_secret_error}", provider="webhook")
        if not message.webhook_secret:
            raise PermanentSendError("webhook: the tenant's endpoint has no signing secret configured")
        body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False)
        # Receivers check the timestamp against their own wall clock (5 minutes of skew), so this one is
        # real time even when the rest of the service runs on a simulated clock.
        timestamp = datetime.now(UTC)
        signature = Webhook(message.webhook_secret).sign(message.delivery_id, timestamp, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": message.delivery_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature,
        }
        try:
            await call(
                self.http,
                self.name,
                "POST",
                message.recipient,
                idempotent=True,
                limiter=self.limiter,
                deadline=self.deadline,
                content=body.encode(),
                headers=headers,
            )
        except ForbiddenDestination as exc:
            raise PermanentSendError(f"webhook: {exc}", provider=self.name) from exc
        return SendReceipt(provider=self.name, provider_message_id=message.delivery_id)

    async def aclose(self) -> None:
        await self.http.aclose()
