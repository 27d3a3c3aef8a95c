"""The promise loop across all four services on real PostgreSQL, the broker and a real SMTP socket, under
the shared simulated clock:

overdue invoice -> reminder -> promise recorded -> dunning paused (no reminder while it stands) ->
promised date passes unpaid -> promise.broken -> the policy engine re-escalates -> the next, firmer
reminder goes out at the next allowed moment (a business day, inside the contact window);
and the other branch: paid on the promised day at 23:00 the customer's time -> kept, no reminder.

Contract with the policy engine (dunning.promises.v1): pause an invoice while a promise on it is active
(promise.created), resume on promise.kept / promise.cancelled, re-escalate on promise.broken.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dunning_kit.devfakes.smtp_sink import SmtpSink
from dunning_kit.testing import Platform, poll_until

pytestmark = pytest.mark.e2e

BERLIN = ZoneInfo("Europe/Berlin")
CUSTOMER = {"id": "C-PTP", "name": "Brandt Maschinenbau GmbH", "email": "ap@brandt.example",
            "time_zone": "Europe/Berlin"}  # fmt: skip
INVOICE_ID = "INV-2026-0300"
PROMISED = date(2026, 3, 26)  # a Thursday; the deadline passes in the first minutes of Friday in Berlin


def berlin(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BERLIN).astimezone(UTC)


async def at(platform: Platform, instant: datetime) -> None:
    """Move the shared clock to `instant` and let every consequence play out."""
    await platform.wait_until_quiet()
    platform.clock.set(instant)
    await platform.wait_until_quiet()


async def timeline(platform: Platform) -> list[dict[str, Any]]:
    async with platform["policy-engine"].client() as api:
        return (await api.get(f"/v1/invoices/{INVOICE_ID}/timeline", params={"limit": 500})).json()["items"]  # type: ignore[no-any-return]


async def dunning_state(platform: Platform) -> dict[str, Any]:
    async with platform["policy-engine"].client() as api:
        return (await api.get(f"/v1/invoices/{INVOICE_ID}/dunning")).json()  # type: ignore[no-any-return]


async def overdue_invoice_with_its_reminders(platform: Platform, smtp_sink: SmtpSink) -> int:
    """Customer and invoice (due Monday 9 March), then the clock walks through its first reminders up to
    the first overdue follow-up on Thursday 12 March. Returns how many emails went out."""
    async with platform["ledger-sync"].client() as api:
        assert (await api.post("/v1/customers", json=CUSTOMER)).status_code == 201
        created = await api.post(
            "/v1/invoices",
            json={"id": INVOICE_ID, "customer_id": "C-PTP", "number": "2026-0300", "currency": "EUR",
                  "total": "2400.00", "issue_date": "2026-02-09", "due_date": "2026-03-09"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
    for day in (4, 9, 12):  # pre-due reminder, due-date notice, first overdue follow-up (10:00 Berlin each)
        await at(platform, berlin(2026, 3, day, 10, 30))
    await poll_until(lambda: _count_at_least(smtp_sink, 1), what="the overdue reminder")
    sent = [e for e in await timeline(platform) if e["kind"] == "sent"]
    assert sent and sent[-1]["step"] == "follow_up_1", sent
    return len(smtp_sink.received)


async def record_promise(platform: Platform) -> dict[str, Any]:
    async with platform["promise-tracker"].client() as api:
        r = await api.post(
            "/v1/promises",
            json={"customer_id": "C-PTP", "invoice_ids": [INVOICE_ID], "amount": "2400.00", "currency": "EUR",
                  "promised_date": PROMISED.isoformat(), "recorded_by": "collector",
                  "note": "AP clerk: payment run on the 26th"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
    await platform.wait_until_quiet()
    return r.json()  # type: ignore[no-any-return]


async def promise_status(platform: Platform, promise_id: str) -> str:
    async with platform["promise-tracker"].client() as api:
        return (await api.get(f"/v1/promises/{promise_id}")).json()["status"]  # type: ignore[no-any-return]


async def test_a_broken_promise_re_escalates_to_a_firmer_reminder_at_the_next_allowed_moment(
    platform: Platform, smtp_sink: SmtpSink
) -> None:
    emails_before = await overdue_invoice_with_its_reminders(platform, smtp_sink)
    promise = await record_promise(platform)

    state = await dunning_state(platform)
    assert state["paused_by"] == ["promise"], state
    paused = [e for e in await timeline(platform) if e["kind"] == "paused"]
    assert paused and "promise" in paused[-1]["reason"], paused

    # follow_up_2 would be due on Monday 23 March: the promise stands, nothing goes out.
    for instant in (berlin(2026, 3, 23, 10, 30), berlin(2026, 3, 25, 12), berlin(2026, 3, 26, 23, 59)):
        await at(platform, instant)
        assert len(smtp_sink.received) == emails_before, "no reminder while the promise stands"
    assert await promise_status(platform, promise["id"]) == "active"

    # The promised day is over (23:59:59 Berlin) and the settle window has passed: broken.
    await at(platform, berlin(2026, 3, 27, 0, 5))
    assert await promise_status(platform, promise["id"]) == "broken"
    escalated = [e for e in await timeline(platform) if e["kind"] == "escalated"]
    assert escalated, await timeline(platform)
    assert "broken" in escalated[-1]["reason"]
    target = escalated[-1]["step"]
    assert target.startswith("firm_"), f"a firmer step than the gentle follow-up: {target}"
    planned = datetime.fromisoformat(escalated[-1]["detail"]["planned_at"]).astimezone(BERLIN)
    # The next allowed moment: Friday 27 March + 1 business day = Monday 30 March, inside 08:00-21:00.
    assert planned.date() == date(2026, 3, 30) and planned.weekday() < 5, planned
    assert 8 <= planned.hour < 21, planned

    await at(platform, planned.astimezone(UTC) - timedelta(minutes=1))
    assert len(smtp_sink.received) == emails_before, "not before its moment"
    await at(platform, planned.astimezone(UTC) + timedelta(minutes=1))
    await poll_until(lambda: _count_at_least(smtp_sink, emails_before + 1), what="the firmer reminder")
    assert len(smtp_sink.received) == emails_before + 1
    assert smtp_sink.received[-1].rcpt_tos == ["ap@brandt.example"]
    sent = [e for e in await timeline(platform) if e["kind"] == "sent"]
    assert sent[-1]["step"] == target


async def test_paying_on_the_promised_day_at_23_00_local_keeps_the_promise_and_no_reminder_follows(
    platform: Platform, smtp_sink: SmtpSink
) -> None:
    emails_before = await overdue_invoice_with_its_reminders(platform, smtp_sink)
    promise = await record_promise(platform)

    await at(platform, berlin(2026, 3, 26, 23, 0))  # 22:00 UTC: still the promised day in Berlin
    async with platform["ledger-sync"].client() as api:
        paid = await api.post(
            "/v1/payments",
            json={"id": "PAY-PTP-1", "customer_id": "C-PTP", "currency": "EUR", "amount": "2400.00",
                  "received_on": PROMISED.isoformat(),
                  "allocations": [{"invoice_id": INVOICE_ID, "amount": "2400.00"}]},
        )  # fmt: skip
        assert paid.status_code == 201, paid.text
    await platform.wait_until_quiet()
    assert await promise_status(platform, promise["id"]) == "kept"

    for days in (1, 4, 10, 30):
        await platform.advance(days=days)
    assert len(smtp_sink.received) == emails_before, "no reminder after a kept promise"
    assert await promise_status(platform, promise["id"]) == "kept"
    assert not [e for e in await timeline(platform) if e["kind"] == "escalated"]
    async with platform["promise-tracker"].client() as api:
        record = (await api.get("/v1/customers/C-PTP/promise-record")).json()
    assert (record["kept_promise_count"], record["broken_promise_count"]) == (1, 0)


async def _count_at_least(sink: SmtpSink, n: int) -> bool:
    return len(sink.received) >= n
