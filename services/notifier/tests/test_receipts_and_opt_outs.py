"""Receipts and opt-outs: Twilio callbacks are verified (bad signature -> 401, nothing recorded), a STOP
reply and an unsubscribe click suppress the address and emit consent.revoked, and later steps skip it."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from sqlalchemy import func, select

from dunning_kit.devfakes.twilio import signature
from dunning_kit.testing import RunningService
from notifier.adapters import orm
from notifier.testing import EventFeed, TopicReader

from .conftest import TWILIO_TOKEN, Fakes

MOBILE = "+4915123456789"


async def _count(svc: RunningService, table: Any) -> int:
    async with svc.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_forged_twilio_callback_is_refused_and_changes_nothing(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    fakes.twilio.auto_callbacks = False
    await feed.publish(feed.customer(phone=MOBILE, consent={"sms": True}), feed.invoice())
    await feed.publish(feed.step(channels=["sms"], template_id="escalation_sms"))
    await notifications.wait_for("notification.sent")
    [sms] = fakes.twilio.messages
    url = f"{notifier.base_url}/callbacks/twilio/status"
    params = {
        "MessageSid": sms["sid"],
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "AccountSid": sms["account_sid"],
    }
    async with httpx.AsyncClient() as http:
        forged = await http.post(
            url, data=params, headers={"X-Twilio-Signature": signature("wrong-token", url, params)}
        )
        unsigned = await http.post(url, data=params)
        tampered = await http.post(
            url,
            data={**params, "MessageStatus": "delivered"},
            headers={"X-Twilio-Signature": signature(TWILIO_TOKEN, url, params)},
        )
    assert (forged.status_code, unsigned.status_code, tampered.status_code) == (401, 401, 401)
    await quiet()
    assert await _count(notifier, orm.receipts) == 0
    async with notifier.client() as api:
        [delivery] = (await api.get("/v1/deliveries")).json()["items"]
    assert delivery["status"] == "sent"
    # The genuine callback (signed with the account's token) is applied, once.
    assert (await fakes.twilio.status_callback(sms["sid"], "undelivered", error_code=30003)).status_code == 204
    assert (await fakes.twilio.status_callback(sms["sid"], "undelivered", error_code=30003)).status_code == 204
    [bounced] = await notifications.wait_for("notification.bounced")
    assert bounced.data.hard is False and "30003" in bounced.data.reason


async def test_a_stop_reply_suppresses_the_number_and_revokes_consent(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    await feed.publish(feed.customer(phone=MOBILE, consent={"sms": True, "voice": True}), feed.invoice())
    await feed.publish(feed.step(channels=["sms"], template_id="escalation_sms"))
    await notifications.wait_for("notification.sent")
    inbound = f"{notifier.base_url}/callbacks/twilio/inbound"
    chat = await fakes.twilio.inbound_sms(inbound, from_=MOBILE, to="+15005550006", body="I will pay on Friday")
    assert chat.status_code == 200 and "<Message>" not in chat.text
    bad = await fakes.twilio.inbound_sms(inbound, from_=MOBILE, to="+15005550006", body="STOP", auth_token="forged")
    assert bad.status_code == 401
    await quiet()
    assert notifications.of_type("consent.revoked") == []
    stop = await fakes.twilio.inbound_sms(inbound, from_=MOBILE, to="+15005550006", body="Stop")
    assert stop.status_code == 200 and stop.text.count("<Message>") == 1  # one confirmation text
    revoked = await notifications.wait_for("consent.revoked", count=2)
    assert sorted((e.data.channel, e.data.reason, e.data.customer_id) for e in revoked) == [
        ("sms", "stop_reply", "C-1"), ("voice", "stop_reply", "C-1"),
    ]  # fmt: skip
    # Later SMS and calls to that number are skipped; falling back to email is allowed.
    await feed.publish(
        feed.step("S-2", channels=["sms", "voice", "email"], channel_mode="fallback", template_id="escalation_sms")
    )
    skipped = await notifications.wait_for("notification.skipped", count=2)
    assert all("suppression list (stop_reply)" in e.data.reason for e in skipped)
    await notifications.wait_for("notification.sent", count=2)
    await quiet()
    assert len(fakes.twilio.messages) == 1 and fakes.twilio.calls == [] and len(fakes.smtp.received) == 1


async def test_an_unsubscribe_click_suppresses_the_address(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    await feed.publish(feed.customer(), feed.invoice())
    await feed.publish(feed.step())
    await notifications.wait_for("notification.sent")
    [mail] = fakes.smtp.received
    link = mail.message["List-Unsubscribe"].strip("<>")
    token = parse_qs(urlparse(link).query)["token"][0]
    async with httpx.AsyncClient(base_url=notifier.base_url) as http:
        page = await http.get("/unsubscribe", params={"token": token})
        assert page.status_code == 200 and "ap@initech.example" in page.text and "<form" in page.text
        tampered = await http.post("/unsubscribe", params={"token": token[:-3] + "AAA"})
        assert tampered.status_code == 400
        # RFC 8058 one-click: the mail client POSTs List-Unsubscribe=One-Click.
        done = await http.post("/unsubscribe", params={"token": token}, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
        again = await http.post("/unsubscribe", params={"token": token})
        assert again.status_code == 200
    [revoked] = await notifications.wait_for("consent.revoked")
    assert (revoked.data.channel, revoked.data.reason) == ("email", "unsubscribe")
    await feed.publish(feed.step("S-2"))
    [skipped] = await notifications.wait_for("notification.skipped")
    assert "suppression list (unsubscribe)" in skipped.data.reason
    await quiet()
    assert len(fakes.smtp.received) == 1 and len(notifications.of_type("consent.revoked")) == 1
