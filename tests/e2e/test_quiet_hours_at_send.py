"""Quiet hours kept at the send, across the platform (issue 11, point 1).

A step planned for 20:59 Berlin time is reached by a notifier that was down until 21:30: the email must not go
out at 21:30. The notifier holds it (notification.held), the policy engine re-plans it for 08:00 the next
morning (dunning.step.replanned), both decisions are on the invoice's timeline, the email leaves exactly once
at 08:00, and the contact caps count it once. Real PostgreSQL, the real broker, a real SMTP socket, the
simulated clock shared by every service."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from dunning_events import topics
from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.event_testing import read_topic
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, Platform, poll_until, start_service

pytestmark = pytest.mark.e2e

BERLIN = ZoneInfo("Europe/Berlin")


async def test_a_step_reached_after_quiet_hours_began_is_held_replanned_and_sent_once_next_morning(
    platform: Platform,
    smtp_sink: SmtpSink,
    database_url: str,
    broker: BrokerBackend,
    platform_overrides: dict[str, dict[str, object]],
) -> None:
    today = platform.clock.now().astimezone(BERLIN).date()  # Monday 2026-03-02
    async with platform["policy-engine"].client("acme-admin-key") as admin:
        base = (await admin.get("/v1/policies/default")).json()
        doc = {k: v for k, v in base.items() if k != "version"} | {"send_time": "20:59"}
        assert (await admin.put("/v1/policies/default", json=doc)).status_code == 200
    async with platform["ledger-sync"].client() as api:
        customer = {"id": "C-QH", "name": "Nachtschicht GmbH", "email": "ap@nachtschicht.example",
                    "time_zone": "Europe/Berlin", "locale": "de-DE", "country": "DE"}  # fmt: skip
        assert (await api.post("/v1/customers", json=customer)).status_code == 201
        invoice = {"id": "INV-QH", "customer_id": "C-QH", "number": "RE-77", "currency": "EUR", "total": "980.00",
                   "issue_date": today.isoformat(), "due_date": (today + timedelta(days=5)).isoformat()}  # fmt: skip
        assert (await api.post("/v1/invoices", json=invoice)).status_code == 201
    await platform.wait_until_quiet()
    steps = await read_topic(broker.bootstrap_servers, topics.STEPS)
    notifications = await read_topic(broker.bootstrap_servers, topics.NOTIFICATIONS)
    try:
        # The notifier is down (a restart, a deploy) when the pre-due reminder becomes due at 20:59.
        await platform.services.pop("notifier").stop()
        platform.clock.set(datetime.combine(today, datetime.min.time(), BERLIN).replace(hour=20, minute=59))
        await platform.wait_until_quiet()
        (due,) = await steps.wait_for("dunning.step.due")
        assert due.data.deliver_until == datetime(2026, 3, 2, 21, tzinfo=BERLIN)

        # It comes back at 21:30 and finds the step waiting in its topic.
        platform.clock.set(datetime(2026, 3, 2, 21, 30, tzinfo=BERLIN))
        platform.services["notifier"] = await start_service(
            spec("notifier"),
            database_url=database_url,
            bootstrap_servers=broker.bootstrap_servers,
            clock=platform.clock,
            overrides=platform_overrides["notifier"],
        )
        (held,) = await notifications.wait_for("notification.held")
        (replanned,) = await steps.wait_for("dunning.step.replanned")
        await platform.wait_until_quiet()
        assert smtp_sink.received == [], "nothing handed to the SMTP server after 21:00 local"
        assert "21:30" in held.data.reason and held.data.step_id == due.data.step_id
        assert replanned.data.step_id == due.data.step_id
        assert replanned.data.deliver_from == datetime(2026, 3, 3, 8, tzinfo=BERLIN)
        async with platform["policy-engine"].client() as engine:
            entries = (await engine.get("/v1/invoices/INV-QH/timeline", params={"limit": 500})).json()["items"]
        kinds = [(e["kind"], e["step"]) for e in entries]
        assert ("held", "pre_due_reminder") in kinds
        replan_note = next(e for e in entries if e["kind"] == "scheduled" and "re-planned" in e["reason"])
        assert replan_note["step"] == "pre_due_reminder"
        assert kinds.index(("held", "pre_due_reminder")) < entries.index(replan_note)

        # 07:59 the next morning: still nothing. 08:00: the one email.
        platform.clock.set(datetime(2026, 3, 3, 7, 59, tzinfo=BERLIN))
        await platform.wait_until_quiet()
        assert smtp_sink.received == []
        platform.clock.set(datetime(2026, 3, 3, 8, 0, tzinfo=BERLIN))
        await poll_until(lambda: _received(smtp_sink), what="the re-planned reminder")
        await notifications.wait_for("notification.sent")
        await platform.wait_until_quiet()
        assert [m.rcpt_tos for m in smtp_sink.received] == [["ap@nachtschicht.example"]]
        assert len(steps.of_type("dunning.step.due")) == 1, "re-planned, not decided again"
        assert len(notifications.of_type("notification.sent")) == 1
    finally:
        await steps.stop()
        await notifications.stop()

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        attempts = await conn.fetchval(
            "SELECT count(DISTINCT delivery_id) FROM policy_engine.contact_attempts WHERE customer_id = 'C-QH'"
        )
    finally:
        await conn.close()
    assert attempts == 1, "the contact caps count the re-planned step once"


async def _received(sink: SmtpSink) -> bool:
    return bool(sink.received)
