"""A collector's one-off reminder now, across the platform: the policy engine decides it (POST
/v1/customers/{id}/reminders) and the real notifier consumer delivers its dunning.step.due as it delivers a scheduled
step, over a real SMTP socket, once; the notifier's notification.sent comes back and the contact caps count it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.testing import Platform, poll_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def platform_overrides(smtp_sink: SmtpSink) -> dict[str, dict[str, object]]:
    return {"notifier": {"smtp_host": smtp_sink.host, "smtp_port": smtp_sink.port, "dev_mode": True}}


async def test_a_reminder_sent_now_is_delivered_by_the_notifier_once_and_counted(
    platform: Platform, smtp_sink: SmtpSink
) -> None:
    today = platform.clock.now().date()
    async with platform["ledger-sync"].client() as api:
        customer = {"id": "C-NOW", "name": "Jetzt GmbH", "email": "ap@jetzt.example", "time_zone": "Europe/Berlin",
                    "locale": "en-GB", "country": "DE"}  # fmt: skip
        assert (await api.post("/v1/customers", json=customer)).status_code == 201
        invoice = {"id": "INV-NOW", "customer_id": "C-NOW", "number": "RE-9", "currency": "EUR", "total": "310.00",
                   "issue_date": today.isoformat(), "due_date": (today + timedelta(days=20)).isoformat()}  # fmt: skip
        assert (await api.post("/v1/invoices", json=invoice)).status_code == 201
    await platform.wait_until_quiet()
    assert smtp_sink.received == []  # the policy's first step is weeks away

    async with platform["policy-engine"].client() as engine:
        sent = await engine.post("/v1/customers/C-NOW/reminders", json={}, headers={"Idempotency-Key": "now-1"})
        assert sent.status_code == 201, sent.text
        assert (await engine.post("/v1/customers/C-NOW/reminders", json={},
                                  headers={"Idempotency-Key": "now-1"})).json() == sent.json()  # fmt: skip

        async def mail():  # type: ignore[no-untyped-def]
            return smtp_sink.received[0] if smtp_sink.received else None

        message = await poll_until(mail, what="the one-off reminder email")
        assert message.rcpt_tos == ["ap@jetzt.example"]
        assert "RE-9" in message.message.get_body(("plain",)).get_content()
        await platform.wait_until_quiet()
        assert len(smtp_sink.received) == 1

        async def counted() -> bool:
            rows = (await engine.get("/v1/invoices/INV-NOW/timeline", params={"limit": 500})).json()["items"]
            return any(e["kind"] == "sent" and e["step"] == "one_off_reminder" for e in rows)

        assert await poll_until(counted, what="the reminder on the timeline")
    # notification.sent came back: the contact caps count the reminder as they count a scheduled step.
    async with platform["policy-engine"].runtime.sessions() as session:
        channels = (await session.execute(
            text("SELECT channel FROM contact_attempts WHERE customer_id = 'C-NOW'")
        )).scalars().all()  # fmt: skip
    assert channels == ["email"]
