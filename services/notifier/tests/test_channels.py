"""Every channel against a local fake speaking the provider's wire format: Twilio SMS and calls (with
signed status callbacks), SendGrid, a print-and-mail API, a Standard Webhooks receiver, collector tasks."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from dunning_events.events import PostalAddress
from dunning_kit.devfakes.asgi_server import AsgiServer
from dunning_kit.testing import RunningService
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_sms_is_sent_in_e164_with_an_opt_out_and_the_status_callback_marks_it_delivered(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader
) -> None:
    await feed.publish(
        feed.customer(phone="0151 23456789", country="DE", locale="de", consent={"sms": True}), feed.invoice()
    )
    await feed.publish(feed.step(channels=["sms"], template_id="escalation_sms", tone="urgent"))
    [delivered] = await notifications.wait_for("notification.delivered")
    [sms] = fakes.twilio.messages
    assert sms["to"] == "+4915123456789" and sms["from"] == "+15005550006"
    assert "4.820,00" in sms["body"] and "STOP" in sms["body"] and "https://" not in sms["body"][:5]
    assert sms["_status_callback"].endswith("/callbacks/twilio/status")
    assert delivered.data.provider_message_id == sms["sid"] and delivered.data.channel == "sms"


async def test_an_sms_without_consent_on_record_is_skipped(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader
) -> None:
    await feed.publish(feed.customer(phone="+4915123456789"), feed.invoice())  # consent.sms defaults to False
    await feed.publish(feed.step(channels=["sms"], template_id="escalation_sms"))
    [skipped] = await notifications.wait_for("notification.skipped")
    assert skipped.data.reason == "no consent on record for sms"
    assert fakes.twilio.messages == []


async def test_a_call_reads_the_reminder_with_twiml_and_completes(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader
) -> None:
    await feed.publish(feed.customer(phone="+4915123456789", locale="de", consent={"voice": True}), feed.invoice())
    await feed.publish(feed.step(channels=["voice"], template_id="escalation_call", tone="urgent"))
    [delivered] = await notifications.wait_for("notification.delivered")
    [call] = fakes.twilio.calls
    assert call["to"] == "+4915123456789"
    assert call["_twiml"].startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Say language="de-DE">')
    assert "Initech GmbH" in call["_twiml"] and "4.820,00" in call["_twiml"]
    assert delivered.data.channel == "voice"


async def test_sendgrid_email_and_its_signed_event_webhook(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    async with notifier.client("acme-admin-key") as admin:
        r = await admin.put("/v1/channel-config", json={
            "email": {"provider": "sendgrid", "from_address": "billing@acme.example", "from_name": "ACME Billing"},
            "branding": {"company_name": "ACME Corp", "primary_color": "#AA0000"},
        })  # fmt: skip
        assert r.status_code == 200, r.text
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step())
    [sent] = await notifications.wait_for("notification.sent")
    [mail] = fakes.sendgrid.mails
    assert mail["from"] == {"email": "billing@acme.example", "name": "ACME Billing"}
    assert [c["type"] for c in mail["content"]] == ["text/plain", "text/html"]
    assert "#AA0000" in mail["content"][1]["value"] and "ACME Corp" in mail["content"][0]["value"]
    assert mail["custom_args"]["delivery_id"] == sent.data.delivery_id
    assert "List-Unsubscribe" in mail["headers"]
    assert sent.data.provider == "sendgrid" and sent.data.provider_message_id == mail["_message_id"]

    url = f"{notifier.base_url}/callbacks/sendgrid/events"
    # A tampered body: 401 and nothing recorded.
    bad = await fakes.sendgrid.post_events(url, [fakes.sendgrid.event(mail, "delivered")], tamper=True)
    assert bad.status_code == 401
    ok = await fakes.sendgrid.post_events(
        url, [fakes.sendgrid.event(mail, "processed"), fakes.sendgrid.event(mail, "delivered")]
    )
    assert ok.status_code == 200
    await notifications.wait_for("notification.delivered")
    bounce = fakes.sendgrid.event(mail, "bounce", type="bounce", reason="550 5.1.1 user unknown", status="5.1.1")
    assert (await fakes.sendgrid.post_events(url, [bounce])).status_code == 200
    assert (await fakes.sendgrid.post_events(url, [bounce])).status_code == 200  # a retried webhook changes nothing
    [bounced] = await notifications.wait_for("notification.bounced")
    assert bounced.data.hard is True and "user unknown" in bounced.data.reason
    [revoked] = await notifications.wait_for("consent.revoked")
    assert (revoked.data.channel, revoked.data.reason) == ("email", "hard_bounce")
    await quiet()
    assert len(notifications.of_type("notification.delivered")) == 1
    assert len(notifications.of_type("notification.bounced")) == 1
    # The next email step to that address is skipped: it is suppressed.
    await feed.publish(feed.step("S-2"))
    [skipped] = await notifications.wait_for("notification.skipped")
    assert "suppression list (hard_bounce)" in skipped.data.reason


async def test_letter_goes_to_the_print_api_with_an_idempotency_key(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader
) -> None:
    async with notifier.client("acme-admin-key") as admin:
        r = await admin.put(
            "/v1/channel-config", json={"letter": {"provider": "print_api", "return_address": ["Acme Str. 1"]}}
        )
        assert r.status_code == 200, r.text
    postal = PostalAddress(lines=["Hauptstraße 1", "Hinterhaus"], postal_code="10115", city="Berlin", country="DE")
    await feed.publish(feed.customer(locale="de", postal=postal), feed.invoice())
    await feed.publish(feed.step(channels=["letter"], template_id="final_notice", tone="final"))
    [sent] = await notifications.wait_for("notification.sent")
    [letter] = fakes.printer.letters
    assert letter["to"]["address_line1"] == "Hauptstraße 1" and letter["to"]["address_city"] == "Berlin"
    assert letter["metadata"]["delivery_id"] == sent.data.delivery_id
    assert letter["_pdf"].startswith(b"%PDF") and letter["description"].startswith("Letzte Mahnung")
    assert sent.data.provider == "print_api" and sent.data.provider_message_id == letter["id"]


class Receiver:
    """A tenant's webhook endpoint: verifies Standard Webhooks signatures, keeps what it accepted."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.rejected = 0
        app = FastAPI()

        @app.post("/hooks/dunning")
        async def hook(request: Request) -> Response:
            body = await request.body()
            try:
                payload = Webhook(SECRET).verify(body, dict(request.headers))
            except WebhookVerificationError:
                self.rejected += 1
                return Response(status_code=401)
            self.accepted.append({"id": request.headers["webhook-id"], **payload})
            return Response(status_code=204)

        self.server = AsgiServer(app)


@pytest_asyncio.fixture
async def receiver() -> Any:
    r = Receiver()
    await r.server.start()
    yield r
    await r.server.stop()


async def test_webhook_is_signed_per_standard_webhooks(
    notifier: RunningService, feed: EventFeed, notifications: TopicReader, receiver: Receiver
) -> None:
    async with notifier.client("acme-admin-key") as admin:
        r = await admin.put(
            "/v1/channel-config",
            json={"webhook": {"url": f"{receiver.server.base_url}/hooks/dunning", "secret": SECRET}},
        )
        assert r.status_code == 200 and r.json()["webhook"]["secret"] == "whsec_…(set)"
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step(channels=["webhook"]))
    [sent] = await notifications.wait_for("notification.sent")
    [hook] = receiver.accepted
    assert receiver.rejected == 0
    assert hook["id"] == sent.data.delivery_id and hook["type"] == "dunning.reminder"
    assert hook["data"]["invoices"] == [
        {
            "invoice_id": "INV-1",
            "number": "2026-0042",
            "balance": "4820.00",
            "due_date": hook["data"]["invoices"][0]["due_date"],
        }
    ]
    assert hook["data"]["promise_url"].startswith("http://promises.example/self-service/promise?token=")
    json.dumps(hook)


@pytest.mark.parametrize("other_key", ["globex-api-key"])
async def test_a_collector_task_is_listed_and_completed_only_by_its_tenant(
    notifier: RunningService, feed: EventFeed, notifications: TopicReader, other_key: str
) -> None:
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step(channels=["task"], template_id="collections_hand_off", tone="final"))
    await notifications.wait_for("notification.sent")
    async with notifier.client() as api, notifier.client(other_key) as other:
        [task] = (await api.get("/v1/tasks")).json()["items"]
        assert task["title"].startswith("Your account has been referred to collections")
        assert task["details"]["invoices"][0]["number"] == "2026-0042"
        assert (await other.get("/v1/tasks")).json()["items"] == []
        assert (await other.post(f"/v1/tasks/{task['id']}/complete", json={})).status_code == 404
        done = await api.post(f"/v1/tasks/{task['id']}/complete", json={"note": "called, promised Friday"})
        assert done.status_code == 200 and done.json()["status"] == "done"
        assert (await api.get("/v1/tasks")).json()["items"] == []
