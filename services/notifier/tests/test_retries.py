"""Retries and limits: transient failures back off (exponential, jittered, bounded) on the injected clock,
then fail; permanent ones fail at once; a Retry-After is honoured; a 5xx from a provider that takes no
idempotency key is an unknown outcome, never retried."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import select

from dunning_kit.devfakes.asgi_server import AsgiServer
from dunning_kit.testing import RunningService, poll_until
from notifier.adapters import orm
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes

MOBILE = "+4915123456789"


@pytest.fixture
def notifier_overrides() -> dict[str, Any]:
    return {"max_send_attempts": 3, "retry_base_seconds": 60, "retry_max_seconds": 600}


async def _delivery(svc: RunningService, channel: str = "sms") -> dict[str, Any] | None:
    d = orm.deliveries.c
    async with svc.runtime.sessions() as session:
        row = (await session.execute(select(orm.deliveries).where(d.channel == channel))).mappings().first()
    return dict(row) if row else None


async def _sms_customer(feed: EventFeed, phone: str = MOBILE) -> None:
    await feed.publish(feed.customer(phone=phone, country="DE", consent={"sms": True, "voice": True}), feed.invoice())


class FlakyEndpoint:
    """A tenant's webhook endpoint that answers 503 to its first request, then accepts."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        app = FastAPI()

        @app.post("/hooks")
        async def hook(request: Request) -> Response:
            self.calls.append(request.headers["webhook-id"])
            return Response(status_code=503 if len(self.calls) == 1 else 204)

        self.server = AsgiServer(app)


async def test_a_5xx_from_an_endpoint_that_deduplicates_is_retried_with_backoff_on_the_clock_then_sent(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    endpoint = FlakyEndpoint()
    await endpoint.server.start()
    try:
        async with notifier.client("acme-admin-key") as admin:
            url = f"{endpoint.server.base_url}/hooks"
            r = await admin.put("/v1/channel-config", json={"webhook": {"url": url, "secret": "whsec_" + "A" * 32}})
            assert r.status_code == 200
        await feed.publish(feed.customer(), feed.invoice())
        await feed.publish(feed.step(channels=["webhook"]))

        async def retry_scheduled() -> dict[str, Any] | None:
            row = await _delivery(notifier, "webhook")
            return row if row and row["status"] == "pending" and row["attempts"] == 1 else None

        row = await poll_until(retry_scheduled, what="a scheduled retry")
        now: datetime = feed.clock.now()
        # First retry after 60 s with equal jitter: between 30 and 60 s from now.
        assert now + timedelta(seconds=30) <= row["next_attempt_at"] <= now + timedelta(seconds=60)
        assert "server error 503" in row["error"]
        await quiet()

        feed.clock.advance(seconds=61)
        [sent] = await notifications.wait_for("notification.sent")
        # The same webhook-id both times: the endpoint de-duplicates, so the retry cannot deliver twice.
        assert endpoint.calls == [sent.data.delivery_id] * 2
        assert (await _delivery(notifier, "webhook"))["attempts"] == 2
    finally:
        await endpoint.server.stop()


@pytest.mark.parametrize("channel", ["sms", "voice"])
async def test_a_twilio_5xx_after_it_took_the_message_ends_unknown_and_is_never_sent_twice(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any, channel: str
) -> None:
    # Twilio takes no idempotency key: a 5xx may come after the message was queued (here it was).
    fakes.twilio.fail_after_accepting(500, 20500, "Internal Server Error")
    await _sms_customer(feed)
    template = "escalation_sms" if channel == "sms" else "escalation_call"
    await feed.publish(feed.step(channels=[channel], template_id=template, tone="urgent"))
    [failed] = await notifications.wait_for("notification.failed")
    assert failed.data.outcome_unknown is True and failed.data.permanent is True
    assert "server error 500" in failed.data.reason and "outcome unknown" in failed.data.reason
    await quiet()
    feed.clock.advance(hours=3)  # past every retry a blind retry would have scheduled
    await quiet()
    row = await _delivery(notifier, channel)
    assert row is not None and row["status"] == "unknown" and row["attempts"] == 1
    assert len(fakes.twilio.messages) + len(fakes.twilio.calls) == 1, "never sent a second time"
    assert notifications.of_type("notification.sent") == []


async def test_a_sendgrid_5xx_ends_unknown_and_is_not_retried(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    async with notifier.client("acme-admin-key") as admin:
        r = await admin.put("/v1/channel-config", json={"email": {"provider": "sendgrid"}})
        assert r.status_code == 200, r.text
    fakes.sendgrid.fail_next(503)  # SendGrid takes no idempotency key: we cannot know it did not send
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step())
    [failed] = await notifications.wait_for("notification.failed")
    assert failed.data.outcome_unknown is True and "server error 503" in failed.data.reason
    await quiet()
    feed.clock.advance(hours=3)
    await quiet()
    assert (await _delivery(notifier, "email"))["status"] == "unknown"
    assert fakes.sendgrid.mails == [] and notifications.of_type("notification.sent") == []


async def test_429_retry_after_is_a_floor_and_exhaustion_fails_with_the_reason(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    fakes.twilio.fail_next(429, 20429, "Too Many Requests", times=3, retry_after=900)
    await _sms_customer(feed)
    await feed.publish(feed.step(channels=["sms"], template_id="escalation_sms", tone="urgent"))
    for attempt in (1, 2):

        async def attempts_are(n: int = attempt) -> dict[str, Any] | None:
            row = await _delivery(notifier)
            return row if row and row["attempts"] == n and row["status"] == "pending" else None

        row = await poll_until(attempts_are, what=f"attempt {attempt} scheduled for retry")
        assert row["next_attempt_at"] >= feed.clock.now() + timedelta(seconds=900), "Retry-After is honoured"
        await quiet()
        feed.clock.advance(seconds=901)
    [failed] = await notifications.wait_for("notification.failed")
    assert failed.data.permanent is False
    assert "rate limited (429" in failed.data.reason and "gave up after 3 attempts" in failed.data.reason
    assert fakes.twilio.messages == []


async def test_an_invalid_number_fails_at_once_and_is_suppressed(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    await _sms_customer(feed, phone="+15005550001")  # Twilio's magic "invalid To" number
    await feed.publish(feed.step(channels=["sms"], template_id="escalation_sms", tone="urgent"))
    [failed] = await notifications.wait_for("notification.failed")
    assert failed.data.permanent is True and "21211" in failed.data.reason
    revoked = await notifications.wait_for("consent.revoked", count=2)
    assert sorted(e.data.channel for e in revoked) == ["sms", "voice"]
    assert {e.data.reason for e in revoked} == {"hard_bounce"}
    row = await _delivery(notifier)
    assert row["status"] == "failed" and row["attempts"] == 1
    async with notifier.client() as api:
        suppressed = (await api.get("/v1/suppressions")).json()["items"]
    assert [(s["kind"], s["address"], s["reason"]) for s in suppressed] == [("phone", "+15005550001", "hard_bounce")]
