"""Personal data in the notifier (GDPR Art. 15 and 17, Reg F's 3 years): the export shows the contacts, the
messages and the providers' callbacks; customer.erased scrubs them and nothing is sent afterwards; the
retention job deletes old bodies and payloads and keeps the fact of each contact."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from dunning_events.codec import encode
from dunning_events.events import CustomerErased, PostalAddress
from dunning_events.topics import partition_key
from dunning_kit.clock import SimulatedClock
from dunning_kit.personal_data import tables_mentioning
from dunning_kit.testing import RunningService
from notifier.adapters import orm
from notifier.domain.erasure import ERASED_SKIP
from notifier.service_layer.retention import MessageRetention
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes

NAME = "Anna Schmidt Feinkost"
EMAIL = "anna.schmidt@feinkost.example"
MOBILE = "+4915123456789"
STREET = "Lindenstrasse 17"
SECRETS = (NAME, EMAIL, MOBILE, MOBILE.lstrip("+"), STREET)


async def _export(svc: RunningService, customer_id: str = "C-1", key: str = "acme-admin-key") -> Any:
    async with svc.client(key) as api:
        return await api.get(f"/v1/customers/{customer_id}/personal-data")


async def _mentions(svc: RunningService, needle: str) -> dict[str, int]:
    async with svc.runtime.sessions() as session:
        return await tables_mentioning(session, orm.metadata, needle)


async def _deliveries(svc: RunningService) -> list[Any]:
    d = orm.deliveries.c
    async with svc.runtime.sessions() as session:
        query = select(d.step_id, d.channel, d.status, d.sent_at, d.subject, d.body_text, d.body_html, d.recipient)
        return list((await session.execute(query.order_by(d.step_id, d.channel))).all())


async def _payloads(svc: RunningService) -> list[Any]:
    async with svc.runtime.sessions() as session:
        return list((await session.execute(select(orm.receipts.c.payload))).scalars())


async def _contacted(feed: EventFeed, notifications: TopicReader, customer_id: str = "C-1") -> None:
    """An email and an SMS sent (Twilio reports the SMS delivered: a provider callback with its payload)."""
    await feed.publish(
        feed.customer(customer_id, name=NAME, email=EMAIL, phone=MOBILE, consent={"sms": True},
                      postal=PostalAddress(lines=[STREET], postal_code="10115", city="Berlin", country="DE")),
        feed.invoice(customer_id=customer_id),
    )  # fmt: skip
    await feed.publish(feed.step("S-1", customer_id, channels=["email"]))
    await feed.publish(feed.step("S-2", customer_id, channels=["sms"], template_id="escalation_sms"))
    await notifications.wait_for("notification.sent", count=2)
    await notifications.wait_for("notification.delivered")


async def test_the_export_shows_contacts_messages_callbacks_and_suppressions(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any
) -> None:
    await _contacted(feed, notifications)
    stop = await fakes.twilio.inbound_sms(
        f"{notifier.base_url}/callbacks/twilio/inbound", from_=MOBILE, to="+15005550006", body="STOP"
    )
    assert stop.status_code == 200
    await notifications.wait_for("consent.revoked", count=2)
    await quiet()

    r = await _export(notifier)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["service"], doc["customer_id"], doc["erased"]) == ("notifier", "C-1", False)
    data = doc["data"]
    assert set(data) == {"customer", "invoices", "deliveries", "provider_events", "suppressions", "collector_tasks"}
    assert data["customer"][0]["name"] == NAME and data["customer"][0]["contacts"][0]["email"] == EMAIL
    assert data["customer"][0]["postal_address"]["lines"] == [STREET]
    assert [i["invoice_id"] for i in data["invoices"]] == ["INV-1"]
    by_channel = {d["channel"]: d for d in data["deliveries"]}
    assert by_channel["email"]["recipient"] == EMAIL and by_channel["email"]["body_text"]
    assert by_channel["sms"]["recipient"] == MOBILE and by_channel["sms"]["status"] == "delivered"
    assert data["provider_events"] and all(e["payload"] for e in data["provider_events"])
    assert [(s["kind"], s["address"], s["reason"]) for s in data["suppressions"]] == [("phone", MOBILE, "stop_reply")]

    assert (await _export(notifier, key="acme-api-key")).status_code == 403
    unknown = (await _export(notifier, "C-404")).json()
    assert unknown["erased"] is False and all(v == [] for v in unknown["data"].values())


async def test_customer_erased_scrubs_the_person_keeps_the_contact_facts_and_stops_sending(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, quiet: Any,
    clock: SimulatedClock,
) -> None:  # fmt: skip
    await _contacted(feed, notifications)
    await fakes.twilio.inbound_sms(
        f"{notifier.base_url}/callbacks/twilio/inbound", from_=MOBILE, to="+15005550006", body="STOP"
    )
    await notifications.wait_for("consent.revoked", count=2)
    # A step waiting outside the debtor's contact window when the erasure arrives.
    await feed.publish(feed.step("S-3", channels=["email"], deliver_from=clock.now() + timedelta(hours=5)))
    await quiet()
    for needle in SECRETS:
        assert await _mentions(notifier, needle), needle
    facts_before = [(r.step_id, r.channel, r.status, r.sent_at) for r in await _deliveries(notifier)]

    (erasure,) = await feed.publish(CustomerErased(customer_id="C-1", erased_at=clock.now(), pseudonym="erased-3f9a1c"))
    await quiet()

    for needle in SECRETS:
        assert await _mentions(notifier, needle) == {}, needle
    rows = await _deliveries(notifier)
    # The fact of each contact stays (channel, step, status, time); the waiting step is cancelled.
    assert [(r.step_id, r.channel, r.status, r.sent_at) for r in rows] == [
        (s, c, "cancelled" if s == "S-3" else st, at) for s, c, st, at in facts_before
    ]
    assert all((r.recipient, r.subject, r.body_text, r.body_html) == (None, None, None, None) for r in rows)
    assert all(p == {} for p in await _payloads(notifier))
    doc = (await _export(notifier)).json()
    assert doc["erased"] is True
    assert doc["data"]["customer"][0]["name"] == "erased-3f9a1c" and doc["data"]["customer"][0]["contacts"] == []
    # The opt-out stays, as a one-way digest of the number.
    assert [(s["kind"], s["address"][:7], s["reason"]) for s in doc["data"]["suppressions"]] == [
        ("phone", "sha256:", "stop_reply")
    ]
    assert not any(needle in str(doc) for needle in SECRETS)

    # Redelivered: nothing changes.
    headers, value = encode(erasure)
    await feed.send_raw(erasure.data.topic, value, partition_key("acme", "C-1").encode(), headers)
    await quiet()
    assert (await _export(notifier)).json() == doc

    # A later sync that still carries contacts, then a step: nothing is sent, the step is skipped with the reason.
    sent = (len(fakes.smtp.received), len(fakes.twilio.messages))
    await feed.publish(feed.customer(name=NAME, email=EMAIL, phone=MOBILE, consent={"sms": True}))
    await feed.publish(feed.step("S-4", channels=["email", "sms"], template_id="escalation_sms"))
    skipped = await notifications.wait_for("notification.skipped", count=2)
    assert {e.data.reason for e in skipped} == {ERASED_SKIP}
    await clock_advance(clock, quiet, hours=6)  # S-3's window opens: it stays cancelled
    assert (len(fakes.smtp.received), len(fakes.twilio.messages)) == sent
    assert await _mentions(notifier, EMAIL) == {}

    # The STOP reply still holds for that number, kept as a digest: another customer with it is not texted.
    await feed.publish(
        feed.customer("C-2", email=None, phone=MOBILE, consent={"sms": True}), feed.invoice("INV-2", "C-2")
    )
    await feed.publish(
        feed.step("S-5", "C-2", (("INV-2", "2026-0043", "100.00"),), ["sms"], template_id="escalation_sms")
    )
    skipped = await notifications.wait_for("notification.skipped", count=3)
    assert "suppression list (stop_reply)" in skipped[-1].data.reason
    assert len(fakes.twilio.messages) == sent[1]


async def clock_advance(clock: SimulatedClock, quiet: Any, **delta: float) -> None:
    await quiet()
    clock.advance(timedelta(**delta))
    await quiet()


async def test_retention_deletes_old_bodies_and_payloads_batch_wise_and_keeps_the_contact_facts(
    notifier: RunningService, feed: EventFeed, notifications: TopicReader, quiet: Any, clock: SimulatedClock
) -> None:
    await _contacted(feed, notifications)
    await quiet()
    facts = [(r.step_id, r.channel, r.status, r.sent_at) for r in await _deliveries(notifier)]
    assert all(r.body_text for r in await _deliveries(notifier)) and all(await _payloads(notifier))

    # One batch of one: one body and one payload go, the rest waits for the next batch.
    one_at_a_time = MessageRetention(notifier.runtime.sessions, 1095, batch_size=1)
    assert await one_at_a_time.purge_due(clock.now() + timedelta(days=1096)) == 2
    assert sum(r.body_text is None for r in await _deliveries(notifier)) == 1

    await clock_advance(clock, quiet, days=1094)  # younger than MESSAGE_RETENTION_DAYS: kept
    assert sum(r.body_text is not None for r in await _deliveries(notifier)) == 1

    await clock_advance(clock, quiet, days=2)
    rows = await _deliveries(notifier)
    assert all((r.subject, r.body_text, r.body_html) == (None, None, None) for r in rows)
    assert all(p == {} for p in await _payloads(notifier))
    assert [(r.step_id, r.channel, r.status, r.sent_at) for r in rows] == facts
    assert {r.recipient for r in rows} == {EMAIL, MOBILE}  # the contact fact, not a body
