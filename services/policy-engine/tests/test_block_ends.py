"""Dunning blocks with an end date: they end by themselves through the block-end timer, exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta

from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import BrokerBackend

from .conftest import EngineHarness, start_engine
from .test_pauses import start_overdue


async def test_a_block_until_a_day_ends_by_itself_and_the_case_resumes_with_its_next_step_planned(
    engine: EngineHarness, database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> None:
    await start_overdue(engine, "A", "B")
    until = (engine.clock.now() + timedelta(days=10)).date()
    async with engine.api() as api:
        r = await api.put("/v1/customers/C-1/dunning-block", json={"reason": "CFO on holiday", "until": str(until)})
        assert r.status_code == 200, r.text
        # A day means "until that day begins" where the debtor lives (Berlin: 23:00 UTC the day before).
        end = datetime.fromisoformat(r.json()["until"])
        assert end.isoformat() == f"{until - timedelta(days=1)}T23:00:00+00:00"
        shown = (await api.get("/v1/customers/C-1/dunning-block")).json()
        assert shown == {"customer_id": "C-1", "blocked": True, "reason": "CFO on holiday", "until": end.isoformat()}
        r = await api.put("/v1/invoices/B/dunning-block", json={"until": (end + timedelta(days=5)).isoformat()})
        assert r.status_code == 200, r.text
    state = await engine.state("A")
    assert (state["paused_by"], state["next_at"], state["customer_block_until"]) == (
        ["customer_block"], None, end.isoformat(),
    )  # fmt: skip
    assert (await engine.state("B"))["block_until"] == (end + timedelta(days=5)).isoformat()
    sent_before = len(await engine.steps_due())

    await engine.advance_to(end - timedelta(minutes=1))
    assert (await engine.state("A"))["paused_by"] == ["customer_block"]
    await engine.advance_to(end + timedelta(minutes=1))
    state = await engine.state("A")
    assert state["paused_by"] == [] and state["next_step"] == "follow_up_1" and state["next_at"] is not None
    assert sorted((await engine.state("B"))["paused_by"]) == ["invoice_block"]  # its own block still runs
    ended = [e for e in await engine.timeline("A") if e["kind"] == "resumed"]
    assert len(ended) == 1 and f"customer dunning block ended (until {end.isoformat()})" in ended[0]["reason"]
    async with engine.api() as api:
        assert (await api.get("/v1/customers/C-1/dunning-block")).json()["blocked"] is False
        customer_tl = (await api.get("/v1/customers/C-1/timeline", params={"limit": 500})).json()["items"]
    assert [e["reason"] for e in customer_tl if e["kind"] == "resumed" and e["invoice_id"] is None] == [
        f"customer dunning block ended (until {end.isoformat()})"
    ]

    await engine.next_moment("A")
    assert len(await engine.steps_due()) == sent_before + 1  # the planned step went out, once
    # B's block ends while the engine is down: the end is in the database, the restarted engine ends it, once.
    await engine.quiet()
    await engine.svc.stop()
    clock.advance(days=6)
    engine.services[0] = await start_engine(database_url, broker, clock)
    await engine.quiet()
    assert (await engine.state("B"))["paused_by"] == []
    assert len([e for e in await engine.timeline("A") if "block ended" in e["reason"]]) == 1
    assert len([e for e in await engine.timeline("B") if "invoice dunning block ended" in e["reason"]]) == 1


async def test_a_delete_before_the_end_ends_the_block_at_once_and_the_end_then_does_nothing(
    engine: EngineHarness,
) -> None:
    await start_overdue(engine, "A")
    until = engine.clock.now() + timedelta(days=5)
    async with engine.api() as api:
        assert (await api.put("/v1/invoices/A/dunning-block", json={"until": until.isoformat()})).status_code == 200
        assert (await api.delete("/v1/invoices/A/dunning-block")).status_code == 200
    state = await engine.state("A")
    assert (state["paused_by"], state["block_until"]) == ([], None)
    await engine.advance(days=6)
    reasons = [e["reason"] for e in await engine.timeline("A")]
    assert any("invoice dunning block cleared" in r for r in reasons)
    assert not any("block ended" in r for r in reasons)


async def test_an_end_that_is_not_after_now_or_not_a_date_is_refused_naming_until(engine: EngineHarness) -> None:
    await start_overdue(engine, "A")
    now = engine.clock.now()
    async with engine.api() as api:
        for until in [str(now.date()), (now - timedelta(hours=1)).isoformat(), "2026-03-20T10:00:00", "soon"]:
            for path in ("/v1/customers/C-1/dunning-block", "/v1/invoices/A/dunning-block"):
                r = await api.put(path, json={"reason": "x", "until": until})
                assert r.status_code == 422, (path, until, r.text)
                assert [e["field"] for e in r.json()["errors"]] == ["until"], r.json()
    assert (await engine.state("A"))["paused_by"] == []  # nothing was blocked
