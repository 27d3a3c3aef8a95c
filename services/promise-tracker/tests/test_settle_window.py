"""The settle window: a payment made before the deadline but still on its way when the deadline passes is
counted, because the check runs PROMISE_DEADLINE_SETTLE_SECONDS after the deadline (the deadline itself
does not move)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import RunningService

pytestmark = pytest.mark.asyncio

DEADLINE = datetime(2026, 3, 5, 23, 59, 59, tzinfo=UTC)


@pytest.fixture
def tracker_overrides() -> dict[str, Any]:
    return {"promise_deadline_settle_seconds": 60}


async def test_a_payment_in_time_that_arrives_within_the_settle_window_keeps_the_promise(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await ledger.customer("C-1")
    await ledger.invoice("INV-IN-TIME", "C-1", "100.00")
    await ledger.invoice("INV-LATE", "C-1", "100.00")
    await quiet()
    async with tracker.client() as api:
        ids = {}
        for inv in ("INV-IN-TIME", "INV-LATE"):
            r = await api.post(
                "/v1/promises",
                json={"customer_id": "C-1", "invoice_ids": [inv], "amount": "100.00", "currency": "EUR",
                      "promised_date": "2026-03-05", "recorded_by": "inbound_reply"},
            )  # fmt: skip
            ids[inv] = r.json()["id"]
        clock.set(DEADLINE + timedelta(seconds=30))
        await quiet()
        assert (await api.get(f"/v1/promises/{ids['INV-LATE']}")).json()["status"] == "active", "not judged yet"
        # Made at 23:59:58 on the promised day, delivered half a minute after the deadline.
        await ledger.payment(
            "PAY-1", "C-1", [("INV-IN-TIME", "100.00")], occurred_at=DEADLINE - timedelta(seconds=1),
            received_on=date(2026, 3, 5),
        )  # fmt: skip
        # Made after the deadline: does not count, even though it arrives before the check.
        await ledger.payment(
            "PAY-2", "C-1", [("INV-LATE", "100.00")], occurred_at=DEADLINE + timedelta(seconds=20),
            received_on=date(2026, 3, 6),
        )  # fmt: skip
        await quiet()
        assert (await api.get(f"/v1/promises/{ids['INV-IN-TIME']}")).json()["status"] == "kept"
        clock.set(DEADLINE + timedelta(seconds=61))
        await quiet()
        late = (await api.get(f"/v1/promises/{ids['INV-LATE']}")).json()
        assert (late["status"], late["received"]) == ("broken", "0.00")
    [broken] = await promise_events.wait_for("promise.broken")
    assert broken.data.promise_id == ids["INV-LATE"]
    assert [e.data.promise_id for e in promise_events.of_type("promise.kept")] == [ids["INV-IN-TIME"]]
