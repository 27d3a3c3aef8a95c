"""Recording, listing, reading and cancelling promises over the API; every rule a new promise must meet."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import RunningService

pytestmark = pytest.mark.asyncio


async def seed(ledger: Any, quiet: Any, time_zone: str = "UTC") -> None:
    await ledger.customer("C-1", time_zone)
    await ledger.invoice("INV-1", "C-1", "1000.00")
    await ledger.invoice("INV-2", "C-1", "250.50")
    await ledger.invoice("INV-USD", "C-1", "99.00", currency="USD")
    await ledger.customer("C-2")
    await ledger.invoice("INV-OTHER", "C-2", "10.00")
    await quiet()


def body(clock: SimulatedClock, **over: Any) -> dict[str, Any]:
    return {
        "customer_id": "C-1",
        "invoice_ids": ["INV-1"],
        "amount": "1000.00",
        "currency": "EUR",
        "promised_date": (clock.now().date() + timedelta(days=5)).isoformat(),
        "recorded_by": "collector",
        "note": "called AP, they pay Friday",
        **over,
    }


def fields(response: Any) -> set[str]:
    assert response.status_code == 422, response.text
    return {d["field"] for d in response.json()["errors"]}


async def test_a_recorded_promise_is_stored_and_announced_with_its_deadline_in_the_customers_zone(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await seed(ledger, quiet, time_zone="America/New_York")
    async with tracker.client() as api:
        created = await api.post("/v1/promises", json=body(clock, promised_date="2026-03-06"))
        assert created.status_code == 201, created.text
        promise = created.json()
        assert promise["status"] == "active"
        assert promise["amount"] == "1000.00" and promise["currency"] == "EUR"
        # 23:59:59 on 6 March in New York (EST, UTC-5) is 04:59:59 UTC on 7 March.
        assert promise["deadline"] == "2026-03-07T04:59:59+00:00"
        assert (await api.get(f"/v1/promises/{promise['id']}")).json() == promise
        listed = (await api.get("/v1/promises", params={"customer_id": "C-1"})).json()["items"]
        assert [p["id"] for p in listed] == [promise["id"]]
        assert (await api.get("/v1/promises", params={"invoice_id": "INV-2"})).json()["items"] == []
    [event] = await promise_events.wait_for("promise.created")
    assert event.data.promise_id == promise["id"]
    assert event.data.recorded_by == "collector"
    assert event.data.deadline.isoformat() == "2026-03-07T04:59:59+00:00"
    assert event.subject == promise["id"]


async def test_cancelling_a_promise_emits_promise_cancelled_and_frees_the_invoice(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock, promise_events: Any
) -> None:
    await seed(ledger, quiet)
    async with tracker.client() as api:
        promise = (await api.post("/v1/promises", json=body(clock))).json()
        cancelled = await api.post(f"/v1/promises/{promise['id']}/cancel", json={"reason": "customer disputes"})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        again = await api.post(f"/v1/promises/{promise['id']}/cancel")
        assert again.status_code == 409
        # The invoice is free again for a new promise.
        assert (await api.post("/v1/promises", json=body(clock))).status_code == 201
    [event] = await promise_events.wait_for("promise.cancelled")
    assert event.data.reason == "customer disputes"
    assert event.data.invoice_ids == ["INV-1"]


INVALID = [
    ({"amount": "0"}, "amount"),
    ({"amount": "-5.00"}, "amount"),
    ({"amount": "1000.01"}, "amount"),
    ({"amount": 10.5}, "amount"),
    ({"amount": "10.123"}, "amount"),
    ({"currency": "USD"}, "currency"),
    ({"currency": "EURO"}, "currency"),
    ({"invoice_ids": ["INV-NOPE"]}, "invoice_ids"),
    ({"invoice_ids": ["INV-OTHER"], "amount": "1.00"}, "invoice_ids"),
    ({"invoice_ids": ["INV-1", "INV-1"]}, "invoice_ids"),
    ({"invoice_ids": []}, "invoice_ids"),
    ({"recorded_by": "robot"}, "recorded_by"),
    ({"promised_date": "2026-03-01"}, "promised_date"),
    ({"promised_date": "2026-04-02"}, "promised_date"),
    ({"promised_date": "soon"}, "promised_date"),
    ({"customer_id": ""}, "customer_id"),
    ({"colour": "blue"}, "colour"),
]


async def test_an_invalid_promise_is_refused_naming_the_field_and_nothing_is_written(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await seed(ledger, quiet)
    async with tracker.client() as api:
        for override, field in INVALID:
            response = await api.post("/v1/promises", json=body(clock, **override))
            assert field in fields(response), (override, response.text)
        malformed = await api.post("/v1/promises", content=b"{not json", headers={"content-type": "application/json"})
        assert malformed.status_code == 400
        assert (await api.get("/v1/promises")).json()["items"] == []
    assert (await tracker.runtime.relay.stats()).backlog == 0


async def test_the_horizon_is_inclusive_and_follows_the_tenants_rules(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await seed(ledger, quiet)
    today = clock.now().date()
    async with tracker.client() as api, tracker.client("acme-admin-key") as admin:
        assert (await admin.get("/v1/admin/promise-rules")).json()["max_horizon_days"] == 30
        at_limit = await api.post("/v1/promises", json=body(clock, promised_date=(today + timedelta(30)).isoformat()))
        assert at_limit.status_code == 201, at_limit.text
        await api.post(f"/v1/promises/{at_limit.json()['id']}/cancel")

        rules = {"max_horizon_days": 7, "grace_days": 2, "plan_on_missed": "strike", "plan_max_strikes": 2,
                 "plan_max_instalments": 6}  # fmt: skip
        assert (await api.put("/v1/admin/promise-rules", json=rules)).status_code == 403
        assert (await admin.put("/v1/admin/promise-rules", json=rules)).status_code == 200
        assert "promised_date" in fields(
            await api.post("/v1/promises", json=body(clock, promised_date=(today + timedelta(8)).isoformat()))
        )
        ok = await api.post("/v1/promises", json=body(clock, promised_date=(today + timedelta(7)).isoformat()))
        assert ok.status_code == 201
        # Grace days move the deadline: 7 days + 2 grace days, end of day UTC.
        assert ok.json()["deadline"] == f"{(today + timedelta(9)).isoformat()}T23:59:59+00:00"
    async with tracker.client("globex-admin-key") as other:
        assert (await other.get("/v1/admin/promise-rules")).json()["max_horizon_days"] == 30


async def test_today_and_the_past_are_judged_in_the_customers_time_zone(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await seed(ledger, quiet, time_zone="Pacific/Auckland")
    clock.advance(hours=3)  # 12:00 UTC on 2 March = 01:00 on 3 March in Auckland
    async with tracker.client() as api:
        assert "promised_date" in fields(await api.post("/v1/promises", json=body(clock, promised_date="2026-03-02")))
        assert (await api.post("/v1/promises", json=body(clock, promised_date="2026-03-03"))).status_code == 201


async def test_at_most_one_active_promise_per_invoice(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await seed(ledger, quiet)
    async with tracker.client() as api:
        first = await api.post("/v1/promises", json=body(clock, invoice_ids=["INV-1", "INV-2"], amount="1250.50"))
        assert first.status_code == 201
        second = await api.post("/v1/promises", json=body(clock, invoice_ids=["INV-2"], amount="100.00"))
        assert fields(second) == {"invoice_ids"}
        assert "INV-2" in second.json()["errors"][0]["reason"]
        # Two requests racing for the same free invoice: exactly one wins.
        await api.post(f"/v1/promises/{first.json()['id']}/cancel")
        import asyncio

        racing = await asyncio.gather(*(api.post("/v1/promises", json=body(clock)) for _ in range(4)))
        assert sorted(r.status_code for r in racing) == [201, 422, 422, 422]


async def test_keys_and_tenants(tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock) -> None:
    await seed(ledger, quiet)
    async with tracker.client(None) as anonymous:
        assert (await anonymous.get("/v1/promises")).status_code == 401
        assert (await anonymous.post("/v1/promises", json=body(clock))).status_code == 401
    async with tracker.client() as api:
        promise = (await api.post("/v1/promises", json=body(clock))).json()
    async with tracker.client("globex-api-key") as globex:
        assert (await globex.get(f"/v1/promises/{promise['id']}")).status_code == 404
        assert (await globex.post(f"/v1/promises/{promise['id']}/cancel")).status_code == 404
        assert (await globex.get("/v1/promises")).json()["items"] == []
        # Another tenant cannot promise against acme's invoice either.
        assert "invoice_ids" in fields(await globex.post("/v1/promises", json=body(clock)))


async def test_listing_pages_through_promises(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await ledger.customer("C-9")
    for n in range(5):
        await ledger.invoice(f"INV-P{n}", "C-9", "10.00")
    await quiet()
    async with tracker.client() as api:
        ids = []
        for n in range(5):
            r = await api.post(
                "/v1/promises", json=body(clock, customer_id="C-9", invoice_ids=[f"INV-P{n}"], amount="10.00")
            )
            ids.append(r.json()["id"])
        seen, cursor = [], None
        while True:
            page = (await api.get("/v1/promises", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
            seen += [p["id"] for p in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(ids) and len(seen) == 5
