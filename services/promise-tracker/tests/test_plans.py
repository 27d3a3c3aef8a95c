"""Payment plans: instalments that sum exactly, each tracked as a promise, and what a missed one does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import RunningService

pytestmark = pytest.mark.asyncio


def plan_body(**over: Any) -> dict[str, Any]:
    return {
        "customer_id": "C-P",
        "invoice_ids": ["INV-P1", "INV-P2"],
        "currency": "EUR",
        "instalment_count": 3,
        "first_due_date": "2026-03-10",
        "interval": "monthly",
        "recorded_by": "collector",
        **over,
    }


async def seed(ledger: Any, quiet: Any) -> None:
    await ledger.customer("C-P", "Europe/Berlin")
    await ledger.invoice("INV-P1", "C-P", "60.00")
    await ledger.invoice("INV-P2", "C-P", "40.00")
    await quiet()


async def set_rules(tracker: RunningService, **rules: Any) -> None:
    body = {"max_horizon_days": 30, "grace_days": 0, "plan_on_missed": "cancel", "plan_max_strikes": 1,
            "plan_max_instalments": 12, **rules}  # fmt: skip
    async with tracker.client("acme-admin-key") as admin:
        assert (await admin.put("/v1/admin/promise-rules", json=body)).status_code == 200


def end_of(day: date) -> datetime:
    """One second after 23:59:59 in Berlin (CET, UTC+1 in March before the 29th; CEST after)."""
    offset = 1 if day < date(2026, 3, 29) else 2
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC) - timedelta(hours=offset)


async def test_a_plan_splits_the_balance_exactly_and_tracks_each_instalment_as_a_promise(
    tracker: RunningService, ledger: Any, quiet: Any, promise_events: Any
) -> None:
    await seed(ledger, quiet)
    async with tracker.client() as api:
        created = await api.post("/v1/plans", json=plan_body())
        assert created.status_code == 201, created.text
        plan = created.json()
        assert plan["total"] == "100.00" and plan["status"] == "active"
        got = [(i["amount"], i["promised_date"], i["instalment_index"]) for i in plan["instalments"]]
        assert got == [("33.34", "2026-03-10", 0), ("33.33", "2026-04-10", 1), ("33.33", "2026-05-10", 2)]
        assert all(i["plan_id"] == plan["id"] and i["status"] == "active" for i in plan["instalments"])
        assert (await api.get(f"/v1/plans/{plan['id']}")).json() == plan
        # The plan holds the invoices: no separate promise on them while it stands.
        single = await api.post(
            "/v1/promises",
            json={"customer_id": "C-P", "invoice_ids": ["INV-P2"], "amount": "40.00", "currency": "EUR",
                  "promised_date": "2026-03-05", "recorded_by": "collector"},
        )  # fmt: skip
        assert single.status_code == 422 and single.json()["errors"][0]["field"] == "invoice_ids"
    [event] = await promise_events.wait_for("plan.created")
    assert [str(i.amount) for i in event.data.instalments] == ["33.34", "33.33", "33.33"]
    created_events = await promise_events.wait_for("promise.created", 3)
    assert {e.data.plan_id for e in created_events} == {plan["id"]}
    assert sorted(str(e.data.deadline) for e in created_events)[0] == "2026-03-10 22:59:59+00:00"


async def test_a_plan_paid_on_schedule_completes(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await seed(ledger, quiet)
    async with tracker.client() as api:
        plan = (await api.post("/v1/plans", json=plan_body(instalment_count=2, interval="weekly"))).json()
        clock.set(datetime(2026, 3, 9, 12, tzinfo=UTC))
        await ledger.payment("PAY-1", "C-P", [("INV-P1", "50.00")])
        await quiet()
        first, second = (await api.get(f"/v1/plans/{plan['id']}")).json()["instalments"]
        assert (first["status"], second["status"], second["received"]) == ("kept", "active", "0.00")
        clock.set(end_of(date(2026, 3, 10)))
        await quiet()
        assert (await api.get(f"/v1/plans/{plan['id']}")).json()["status"] == "active"
        clock.set(datetime(2026, 3, 17, 20, tzinfo=UTC))
        await ledger.payment("PAY-2", "C-P", [("INV-P1", "10.00"), ("INV-P2", "40.00")])
        await quiet()
        done = (await api.get(f"/v1/plans/{plan['id']}")).json()
        assert done["status"] == "completed"
        assert [i["status"] for i in done["instalments"]] == ["kept", "kept"]
    [completed] = await promise_events.wait_for("plan.completed")
    assert completed.data.plan_id == plan["id"]
    assert len(await promise_events.wait_for("promise.kept", 2)) == 2


async def test_an_early_payment_of_everything_keeps_every_instalment_at_once(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await seed(ledger, quiet)
    async with tracker.client() as api:
        plan = (await api.post("/v1/plans", json=plan_body())).json()
        clock.advance(hours=2)
        await ledger.payment("PAY-ALL", "C-P", [("INV-P1", "60.00"), ("INV-P2", "40.00")])
        await quiet()
        done = (await api.get(f"/v1/plans/{plan['id']}")).json()
        assert done["status"] == "completed"
        assert [i["received"] for i in done["instalments"]] == ["33.34", "33.33", "33.33"]
    await promise_events.wait_for("plan.completed")


async def test_a_missed_instalment_defaults_the_plan_when_the_policy_says_cancel(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await seed(ledger, quiet)
    async with tracker.client() as api:
        plan = (await api.post("/v1/plans", json=plan_body())).json()
        clock.set(end_of(date(2026, 3, 10)) - timedelta(seconds=1))
        await quiet()
        assert (await api.get(f"/v1/plans/{plan['id']}")).json()["status"] == "active"
        clock.set(end_of(date(2026, 3, 10)))
        await quiet()
        defaulted = (await api.get(f"/v1/plans/{plan['id']}")).json()
        assert defaulted["status"] == "defaulted"
        assert [i["status"] for i in defaulted["instalments"]] == ["broken", "cancelled", "cancelled"]
        # The invoices are free again.
        again = await api.post("/v1/plans", json=plan_body(first_due_date="2026-03-20"))
        assert again.status_code == 201, again.text
    await promise_events.wait_for("plan.defaulted")
    mine = [e for e in promise_events.events if getattr(e.data, "plan_id", None) == plan["id"]]
    # Consumers see nothing else standing when the broken instalment arrives: cancellations come first.
    assert [e.type for e in mine][-4:] == ["promise.cancelled", "promise.cancelled", "promise.broken", "plan.defaulted"]
    broken = mine[-2].data
    assert broken.broken_promise_count == 1 and str(broken.shortfall) == "33.34"


async def test_in_strike_mode_a_plan_survives_the_allowed_misses_and_defaults_on_the_next(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await seed(ledger, quiet)
    await set_rules(tracker, plan_on_missed="strike", plan_max_strikes=1)
    async with tracker.client() as api:
        plan = (await api.post("/v1/plans", json=plan_body(interval="weekly"))).json()
        clock.set(end_of(date(2026, 3, 10)))
        await quiet()
        struck = (await api.get(f"/v1/plans/{plan['id']}")).json()
        assert (struck["status"], struck["strikes"]) == ("active", 1)
        assert [i["status"] for i in struck["instalments"]] == ["broken", "active", "active"]
        clock.set(end_of(date(2026, 3, 17)))
        await quiet()
        defaulted = (await api.get(f"/v1/plans/{plan['id']}")).json()
        assert (defaulted["status"], defaulted["strikes"]) == ("defaulted", 2)
        assert [i["status"] for i in defaulted["instalments"]] == ["broken", "broken", "cancelled"]
    [event] = await promise_events.wait_for("plan.defaulted")
    assert event.data.strikes == 2
    counts = [e.data.broken_promise_count for e in promise_events.of_type("promise.broken")]
    assert counts == [1, 2], "chronic promise-breakers are counted per customer"


async def test_cancelling_a_plan_cancels_its_open_instalments(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await seed(ledger, quiet)
    async with tracker.client() as api:
        plan = (await api.post("/v1/plans", json=plan_body(instalment_count=2))).json()
        first = plan["instalments"][0]["id"]
        assert (await api.post(f"/v1/promises/{first}/cancel")).status_code == 409, "cancel the plan, not a part"
        r = await api.post(f"/v1/plans/{plan['id']}/cancel", json={"reason": "renegotiated"})
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert (await api.post(f"/v1/plans/{plan['id']}/cancel")).status_code == 409
    async with tracker.client("globex-api-key") as other:
        assert (await other.get(f"/v1/plans/{plan['id']}")).status_code == 404
    cancelled = await promise_events.wait_for("promise.cancelled", 2)
    assert {e.data.reason for e in cancelled} == {"renegotiated"}


async def test_an_invalid_plan_is_refused_naming_the_field(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await seed(ledger, quiet)
    cases = [
        ({"instalment_count": 0}, "instalment_count"),
        ({"instalment_count": 13}, "instalment_count"),
        ({"total": "100.01"}, "total"),
        ({"total": "0.02"}, "total"),
        ({"total": "-1"}, "total"),
        ({"first_due_date": "2026-03-01"}, "first_due_date"),
        ({"first_due_date": "2026-04-02"}, "first_due_date"),
        ({"interval": "daily"}, "interval"),
        ({"currency": "GBP"}, "currency"),
        ({"invoice_ids": ["INV-NOPE"]}, "invoice_ids"),
    ]
    async with tracker.client() as api:
        for override, field in cases:
            r = await api.post("/v1/plans", json=plan_body(**override))
            assert r.status_code == 422, (override, r.text)
            assert field in {d["field"] for d in r.json()["errors"]}, (override, r.text)
        assert (await api.get("/v1/plans")).json()["items"] == []
        assert (await api.get("/v1/promises")).json()["items"] == []
