"""Matching payments and credit notes to promises, and the deadline verdicts at their boundaries, on real
PostgreSQL and the broker under the simulated clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from dunning_events import topics
from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import RunningService, poll_until

pytestmark = pytest.mark.asyncio

LA = "America/Los_Angeles"
# Promised for Thursday 5 March 2026; 23:59:59 in Los Angeles (PST, UTC-8) is 07:59:59 UTC on 6 March.
PROMISED = date(2026, 3, 5)
DEADLINE = datetime(2026, 3, 6, 7, 59, 59, tzinfo=UTC)


async def promise(api: Any, customer: str, invoices: list[str], amount: str, day: date = PROMISED) -> dict[str, Any]:
    r = await api.post(
        "/v1/promises",
        json={"customer_id": customer, "invoice_ids": invoices, "amount": amount, "currency": "EUR",
              "promised_date": day.isoformat(), "recorded_by": "collector"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def status(api: Any, promise_id: str) -> dict[str, Any]:
    return (await api.get(f"/v1/promises/{promise_id}")).json()  # type: ignore[no-any-return]


async def test_kept_partially_kept_and_broken_one_second_either_side_of_the_deadline_in_the_customers_zone(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    for c in ("C-KEPT", "C-PART", "C-NONE", "C-LATE"):
        await ledger.customer(c, LA)
        await ledger.invoice(f"INV-{c}", c, "500.00")
    await quiet()
    async with tracker.client() as api:
        kept = await promise(api, "C-KEPT", ["INV-C-KEPT"], "500.00")
        part = await promise(api, "C-PART", ["INV-C-PART"], "500.00")
        none = await promise(api, "C-NONE", ["INV-C-NONE"], "500.00")
        late = await promise(api, "C-LATE", ["INV-C-LATE"], "500.00")
        assert kept["deadline"] == DEADLINE.isoformat()

        clock.set(DEADLINE - timedelta(seconds=1))  # 23:59:58 in Los Angeles
        await ledger.payment("PAY-K", "C-KEPT", [("INV-C-KEPT", "500.00")], received_on=PROMISED)
        await ledger.payment("PAY-P", "C-PART", [("INV-C-PART", "200.00")], received_on=PROMISED)
        await quiet()
        assert (await status(api, kept["id"]))["status"] == "kept", "kept as soon as the amount arrived"
        assert (await status(api, part["id"]))["status"] == "active"

        clock.set(DEADLINE)  # the deadline's last second has not passed yet
        await quiet()
        assert (await status(api, none["id"]))["status"] == "active"
        assert (await status(api, part["id"]))["status"] == "active"

        clock.set(DEADLINE + timedelta(seconds=1))  # 00:00:00 on 6 March in Los Angeles
        await ledger.payment("PAY-L", "C-LATE", [("INV-C-LATE", "500.00")], received_on=date(2026, 3, 6))
        await quiet()
        assert (await status(api, none["id"]))["status"] == "broken"
        assert (await status(api, late["id"]))["status"] == "broken", "a payment one second late does not count"
        partial = await status(api, part["id"])
        assert (partial["status"], partial["received"], partial["shortfall"]) == ("partially_kept", "200.00", "300.00")
        record = (await api.get("/v1/customers/C-NONE/promise-record")).json()
        assert record["broken_promise_count"] == 1 and record["active_promises"] == 0
        unknown = await api.get("/v1/customers/C-404/promise-record")
        assert (unknown.status_code, unknown.headers["content-type"], unknown.json()["detail"]) == (
            404, "application/problem+json",
            "unknown customer C-404: the promise-tracker has applied every event published so far and none was about it",
        )  # fmt: skip

    [kept_event] = await promise_events.wait_for("promise.kept")
    assert (kept_event.data.promise_id, str(kept_event.data.received)) == (kept["id"], "500.00")
    broken = {e.data.promise_id: e.data for e in await promise_events.wait_for("promise.broken", 3)}
    assert broken[none["id"]].partially_kept is False and str(broken[none["id"]].shortfall) == "500.00"
    assert broken[part["id"]].partially_kept is True and str(broken[part["id"]].shortfall) == "300.00"
    assert broken[part["id"]].deadline == DEADLINE
    assert all(b.broken_promise_count == 1 for b in broken.values())


async def test_grace_days_move_the_deadline_by_whole_days(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await ledger.customer("C-G", "Asia/Tokyo")
    await ledger.invoice("INV-G1", "C-G", "80.00")
    await ledger.invoice("INV-G2", "C-G", "80.00")
    await quiet()
    async with tracker.client("acme-admin-key") as admin:
        rules = {"max_horizon_days": 30, "grace_days": 2, "plan_on_missed": "cancel", "plan_max_strikes": 1,
                 "plan_max_instalments": 12}  # fmt: skip
        assert (await admin.put("/v1/admin/promise-rules", json=rules)).status_code == 200
    # 5 March + 2 grace days, 23:59:59 in Tokyo (UTC+9) = 14:59:59 UTC on 7 March.
    grace_deadline = datetime(2026, 3, 7, 14, 59, 59, tzinfo=UTC)
    async with tracker.client() as api:
        paid = await promise(api, "C-G", ["INV-G1"], "80.00")
        unpaid = await promise(api, "C-G", ["INV-G2"], "80.00")
        assert paid["deadline"] == grace_deadline.isoformat()
        clock.set(datetime(2026, 3, 5, 15, 0, 1, tzinfo=UTC))  # the promised day itself is over in Tokyo
        await quiet()
        assert (await status(api, unpaid["id"]))["status"] == "active"
        clock.set(grace_deadline - timedelta(seconds=1))
        await ledger.payment("PAY-G", "C-G", [("INV-G1", "80.00")], received_on=date(2026, 3, 7))
        await quiet()
        assert (await status(api, paid["id"]))["status"] == "kept"
        assert (await status(api, unpaid["id"]))["status"] == "active"
        clock.set(grace_deadline + timedelta(seconds=1))
        await quiet()
        assert (await status(api, unpaid["id"]))["status"] == "broken"
    await promise_events.wait_for("promise.broken")


async def test_early_split_payments_and_credit_notes_all_count_and_money_before_the_promise_does_not(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await ledger.customer("C-S", LA)
    await ledger.invoice("INV-S1", "C-S", "600.00")
    await ledger.invoice("INV-S2", "C-S", "400.00")
    await quiet()
    await ledger.payment("PAY-BEFORE", "C-S", [("INV-S1", "100.00")])  # before the promise: not counted
    await quiet()
    async with tracker.client() as api:
        p = await promise(api, "C-S", ["INV-S1", "INV-S2"], "900.00")
        clock.advance(hours=1)
        await ledger.payment("PAY-1", "C-S", [("INV-S1", "250.00")])  # days early
        await ledger.credit_note("CN-1", "C-S", [("INV-S2", "150.00")])
        await quiet()
        now = await status(api, p["id"])
        assert (now["status"], now["received"]) == ("active", "400.00")
        await ledger.payment("PAY-2", "C-S", [("INV-S1", "250.00"), ("INV-S2", "250.00")])  # split over both
        await quiet()
        done = await status(api, p["id"])
        assert (done["status"], done["received"]) == ("kept", "900.00")
    [kept] = await promise_events.wait_for("promise.kept")
    assert str(kept.data.received) == "900.00"
    async with tracker.client() as api:
        assert (await api.get("/v1/customers/C-S/promise-record")).json()["kept_promise_count"] == 1


async def test_a_redelivered_payment_counts_once_and_a_reversal_takes_its_money_back(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await ledger.customer("C-R")
    await ledger.invoice("INV-R", "C-R", "300.00")
    await quiet()
    async with tracker.client() as api:
        p = await promise(api, "C-R", ["INV-R"], "300.00")
        clock.advance(hours=1)
        await ledger.payment("PAY-R", "C-R", [("INV-R", "200.00")])
        await quiet()
        # The same event again (at-least-once on the wire): the inbox applies it once.
        payment = ledger.last_sent
        headers, value = ledger.last_raw
        await ledger.producer.send_and_wait(topics.LEDGER, value=value, key=b"acme:C-R", headers=headers)
        await quiet()
        assert payment.type == "payment.applied"
        assert (await status(api, p["id"]))["received"] == "200.00"
        await ledger.reversal("PAY-R", "C-R", [("INV-R", "200.00")])
        await quiet()
        assert (await status(api, p["id"]))["received"] == "0.00"
        clock.set(datetime(2026, 3, 6, 0, 0, 0, tzinfo=UTC))
        await quiet()
        broken = await status(api, p["id"])
        assert broken["status"] == "broken", "a reversed payment leaves nothing received"
    [event] = await promise_events.wait_for("promise.broken")
    assert event.data.partially_kept is False


async def test_an_invoice_settled_however_it_was_cannot_be_a_broken_promise(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await ledger.customer("C-Z")
    await ledger.invoice("INV-Z", "C-Z", "50.00")
    await quiet()
    async with tracker.client() as api:
        p = await promise(api, "C-Z", ["INV-Z"], "50.00")
        # The ERP reports a payment made before the promise was recorded: it does not count toward the
        # promise, but nothing is owed any more.
        await ledger.payment(
            "PAY-Z", "C-Z", [("INV-Z", "50.00")], occurred_at=clock.now() - timedelta(hours=2),
            received_on=date(2026, 3, 1),
        )  # fmt: skip
        await quiet()
        assert (await status(api, p["id"]))["received"] == "0.00"
        clock.set(datetime(2026, 3, 6, 0, 0, 0, tzinfo=UTC))
        await quiet()
        assert (await status(api, p["id"]))["status"] == "kept"


async def test_a_voided_invoice_cancels_its_promise(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await ledger.customer("C-V")
    await ledger.invoice("INV-V", "C-V", "70.00")
    await quiet()
    async with tracker.client() as api:
        p = await promise(api, "C-V", ["INV-V"], "70.00")
        await ledger.void("INV-V")
        await quiet()
        assert (await status(api, p["id"]))["status"] == "cancelled"
    [event] = await promise_events.wait_for("promise.cancelled")
    assert "void" in (event.data.reason or "")


async def test_events_about_unknown_invoices_are_dead_lettered_and_the_consumer_goes_on(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, topic_reader: Any
) -> None:
    dlq = await topic_reader(topics.dead_letter_topic("promise-tracker.ledger"))
    await ledger.customer("C-D")
    await ledger.invoice("INV-D", "C-D", "10.00")
    await quiet()
    async with tracker.client() as api:
        p = await promise(api, "C-D", ["INV-D"], "10.00")
        clock.advance(minutes=1)
        await ledger.payment("PAY-GHOST", "C-D", [("INV-NEVER-SEEN", "10.00")])
        await ledger.payment("PAY-D", "C-D", [("INV-D", "10.00")])
        await quiet()
        assert (await status(api, p["id"]))["status"] == "kept"

    async def dead() -> list[Any]:
        return dlq.raw

    [record] = await poll_until(dead, what="the dead-lettered payment")
    headers = dict(record.headers)
    assert b"INV-NEVER-SEEN" in headers["dlq-error"]
    assert b"PAY-GHOST" in record.value
