"""A slow or broken partner stalls nobody else (issue 12, point 4): a total deadline per provider request, a
slow tenant endpoint that holds back no other tenant's sends nor the next claim, a stuck-sweep that races a
late answer with exactly one winner, and an outcome write that survives a transient database error."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import select, text

from dunning_kit.devfakes.asgi_server import AsgiServer
from dunning_kit.devfakes.trickle import TricklingServer
from dunning_kit.outbound import OutboundPolicy
from dunning_kit.testing import RunningService, poll_until, wait_until_quiet
from notifier.adapters import orm
from notifier.adapters.channels.http import RateLimiter
from notifier.adapters.channels.twilio import TwilioClient, TwilioSms
from notifier.adapters.channels.webhook import SignedWebhooks
from notifier.domain.messages import OutboundMessage, OutcomeUnknownError, Sender, TransientSendError
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _message(recipient: str, channel: str = "webhook") -> OutboundMessage:
    return OutboundMessage(
        delivery_id="6f1c0f7e-0000-4000-8000-000000000001", idempotency_key="acme:C-1:S-1:" + channel,
        tenant_id="acme", customer_id="C-1", step_id="S-1", channel=channel, recipient=recipient,
        recipient_name=None, locale="en", subject="Reminder", text="Please pay", sms="Please pay",
        sender=Sender(phone="+15005550006"), payload={"type": "dunning.reminder"}, webhook_secret=SECRET,
    )  # fmt: skip


# ---------------------------------------------------------------- (a) a total deadline per request


async def test_a_trickling_webhook_server_is_cut_off_at_the_requests_total_deadline() -> None:
    # One byte every 1.5 s never trips a 2 s read timeout: 12 bytes would hold the call open for 18 s.
    async with TricklingServer(interval=1.5, size=12) as server:
        hooks = SignedWebhooks(RateLimiter(100), timeout=2.0, deadline=3.0, egress=OutboundPolicy("127.0.0.0/8"))
        started = time.monotonic()
        try:
            with pytest.raises(TransientSendError, match="timed out"):  # webhook-id de-duplicates: a retry is safe
                await hooks.send(_message(f"{server.base_url}/hooks"))
        finally:
            await hooks.aclose()
        elapsed = time.monotonic() - started
    assert server.requests == 1
    assert 2.9 <= elapsed < 4.5, f"the request ended after {elapsed:.1f} s, not at its 3 s deadline"


async def test_a_trickling_twilio_answer_ends_at_the_deadline_as_an_unknown_outcome() -> None:
    async with TricklingServer(interval=1.5, size=12, status=201) as server:
        client = TwilioClient(server.base_url, "AC" + "1" * 32, "token", RateLimiter(100), timeout=2.0, deadline=3.0)
        started = time.monotonic()
        try:
            with pytest.raises(OutcomeUnknownError, match="outcome unknown"):  # no idempotency key: never retried
                await TwilioSms(client).send(_message("+4915123456789", channel="sms"))
        finally:
            await client.aclose()
        elapsed = time.monotonic() - started
    assert elapsed < 4.5, f"the request ended after {elapsed:.1f} s, not at its 3 s deadline"


# ---------------------------------------------------------------- (b) one slow tenant holds back nobody else


class Endpoint:
    """A tenant's webhook endpoint; `held` ones keep every request open until the test releases them."""

    def __init__(self, held: bool = False) -> None:
        self.arrived: list[str] = []
        self.release = asyncio.Event()
        if not held:
            self.release.set()
        app = FastAPI()

        @app.post("/hooks")
        async def hook(request: Request) -> Response:
            self.arrived.append(request.headers["webhook-id"])
            await self.release.wait()
            return Response(status_code=204)

        self.server = AsgiServer(app)

    @property
    def url(self) -> str:
        return f"{self.server.base_url}/hooks"


async def _statuses(svc: RunningService, tenant: str) -> dict[tuple[str, str], str]:
    d = orm.deliveries.c
    async with svc.runtime.sessions() as session:
        rows = await session.execute(select(d.step_id, d.channel, d.status).where(d.tenant_id == tenant))
    return {(s, c): st for s, c, st in rows.all()}


SLOW_TENANT = {
    "dispatch_workers": 1,
    "provider_max_connections": 2,
    "webhook_max_connections_per_tenant": 1,
    "provider_deadline_seconds": 60,
}


@pytest.mark.parametrize("notifier_overrides", [SLOW_TENANT])
async def test_a_slow_tenant_endpoint_holds_back_neither_other_tenants_sends_nor_the_next_claim(
    notifier: RunningService, feed: EventFeed, fakes: Fakes
) -> None:
    slow, fast = Endpoint(held=True), Endpoint()
    await slow.server.start()
    await fast.server.start()
    try:
        for key, endpoint in (("acme-admin-key", slow), ("globex-admin-key", fast)):
            async with notifier.client(key) as admin:
                r = await admin.put("/v1/channel-config", json={"webhook": {"url": endpoint.url, "secret": SECRET}})
                assert r.status_code == 200
        # acme: two webhooks to its slow endpoint - as many as the webhook provider has connections.
        await feed.publish(*[feed.customer(f"A-{i}", email=f"a{i}@acme.example") for i in range(2)])
        await feed.publish(*[feed.invoice(f"IA-{i}", customer_id=f"A-{i}", number=f"NA-{i}") for i in range(2)])
        # globex: an email and a webhook (its endpoint answers at once).
        await feed.publish(feed.customer("G-1", email="ap@globex.example"), feed.invoice("IG-1", customer_id="G-1"),
                           tenant_id="globex")  # fmt: skip
        await feed.publish(
            *[feed.step(f"SA-{i}", customer_id=f"A-{i}", invoices=[(f"IA-{i}", f"NA-{i}", "10.00")],
                        channels=["webhook"]) for i in range(2)],
        )  # fmt: skip
        await feed.publish(
            feed.step("SG-1", customer_id="G-1", invoices=[("IG-1", "N-1", "10.00")], channels=["email", "webhook"]),
            tenant_id="globex",
        )

        async def slow_call_open() -> bool:
            return bool(slow.arrived)

        await poll_until(slow_call_open, what="acme's slow endpoint to hold a call open")

        async def globex_sent() -> bool:
            return set((await _statuses(notifier, "globex")).values()) == {"sent"}

        await poll_until(globex_sent, timeout=10, what="globex's email and webhook sent while acme's call hangs")
        assert len(fast.arrived) == 1 and [m.rcpt_tos for m in fakes.smtp.received] == [["ap@globex.example"]]

        # A step due after those batches were claimed goes out too: the next claim does not wait for the slow call.
        await feed.publish(
            feed.step("SG-2", customer_id="G-1", invoices=[("IG-1", "N-1", "10.00")], channels=["email"]),
            tenant_id="globex",
        )

        async def second_sent() -> bool:
            return (await _statuses(notifier, "globex")).get(("SG-2", "email")) == "sent"

        await poll_until(second_sent, timeout=10, what="globex's next step sent while acme's call still hangs")
        assert not slow.release.is_set() and len(slow.arrived) == 1, "acme's endpoint got one call at a time"
        slow.release.set()
        await wait_until_quiet([notifier.runtime])
        assert set((await _statuses(notifier, "acme")).values()) == {"sent"}
        assert len(slow.arrived) == 2
    finally:
        slow.release.set()
        await slow.server.stop()
        await fast.server.stop()


# ---------------------------------------------------------------- (c) the stuck sweep against a late answer


async def _rows(svc: RunningService) -> list[dict[str, Any]]:
    async with svc.runtime.sessions() as session:
        return [dict(r) for r in (await session.execute(select(orm.deliveries))).mappings().all()]


@pytest.mark.parametrize("notifier_overrides", [{"sending_stuck_after_seconds": 1}])
async def test_a_call_the_stuck_sweep_wrote_off_stays_unknown_when_its_answer_comes_late(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader
) -> None:
    async def answer_late(outcomes: list[Any]) -> None:
        """The provider took the message; its answer reaches the recorder only after the sweep gave up on it."""

        async def written_off() -> bool:
            return [r["status"] for r in await _rows(notifier)] == ["unknown"]

        await poll_until(written_off, what="the stuck sweep to write the call off")

    notifier.runtime.objects.dispatcher.after_send_hook = answer_late
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step())
    [failed] = await notifications.wait_for("notification.failed")
    await wait_until_quiet([notifier.runtime])
    [row] = await _rows(notifier)
    assert row["status"] == "unknown", "the late answer must not flip a written-off delivery to sent"
    assert row["provider_message_id"], "the provider's id is kept, so a delivery receipt can still find the row"
    assert failed.data.outcome_unknown and failed.data.delivery_id == str(row["id"])
    outcomes = [e for e in notifications.events if e.type.startswith("notification.")]
    assert [e.type for e in outcomes] == ["notification.failed"], "exactly one terminal event"
    assert len(fakes.smtp.received) == 1


# ---------------------------------------------------------------- (e) a transient database error on the record

_FAULT = [
    "CREATE SEQUENCE outcome_write_faults",
    """
    CREATE FUNCTION fail_first_sent_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.status = 'sent' THEN
            IF nextval('outcome_write_faults') = 1 THEN
                RAISE EXCEPTION 'injected: could not serialize access' USING ERRCODE = 'serialization_failure';
            END IF;
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER fail_first_sent_write BEFORE UPDATE ON deliveries FOR EACH ROW "
    "EXECUTE FUNCTION fail_first_sent_write()",
]


async def test_a_transient_database_error_on_the_outcome_write_is_retried_and_recorded_sent(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader
) -> None:
    async with notifier.runtime.sessions() as session, session.begin():
        for statement in _FAULT:  # the first write of a `sent` outcome fails as a serialization failure would
            await session.execute(text(statement))
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step())
    [sent] = await notifications.wait_for("notification.sent")
    await wait_until_quiet([notifier.runtime])
    [row] = await _rows(notifier)
    assert row["status"] == "sent" and row["attempts"] == 1 and sent.data.delivery_id == str(row["id"])
    async with notifier.runtime.sessions() as session:
        faults = (await session.execute(text("SELECT last_value FROM outcome_write_faults"))).scalar_one()
    assert faults == 2, "the write failed once, then was retried and committed"
    assert len(fakes.smtp.received) == 1
    assert notifications.of_type("notification.failed") == []
