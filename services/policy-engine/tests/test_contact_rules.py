"""Contact caps, consent and opt-outs, quiet hours, and the stale-ledger rule on the real stack."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dunning_events.envelope import TENANT_WIDE
from dunning_events.events import (
    ChannelHold,
    ConsentRevoked,
    DunningStepHeld,
    LedgerSynced,
    NextStep,
    NotificationFailed,
    NotificationSent,
)
from dunning_kit.event_testing import assert_exported

from .conftest import EngineHarness, customer, invoice, start_engine


def calls(cid: str, invoice_id: str, n: int) -> list[NotificationSent]:
    return [
        NotificationSent(customer_id=cid, delivery_id=f"{cid}-call-{i}", step_id="s", channel="voice",
                         invoice_ids=[invoice_id])
        for i in range(n)
    ]  # fmt: skip


async def test_no_call_when_7_call_attempts_were_made_about_that_debt_in_7_days_and_the_hold_is_an_event(
    engine: EngineHarness,
) -> None:
    await engine.publish(customer("C-1", voice=True), customer("C-2", voice=True))
    await engine.publish(*calls("C-1", "CAPPED", 7), *calls("C-2", "FREE", 6))
    await engine.quiet()
    overdue = engine.today - timedelta(days=70)  # the call escalation is the step that fits their age
    await engine.publish(invoice("CAPPED", "C-1", due=overdue), invoice("FREE", "C-2", due=overdue))
    await engine.quiet()

    steps = {s.customer_id: s for s in await engine.steps_due()}
    assert steps["C-1"].step_name == steps["C-2"].step_name == "call_escalation"
    assert steps["C-1"].channels == ["task"]  # voice capped; the collector task (fallback) still goes out
    assert steps["C-2"].channels == ["voice", "task"]
    reason = "voice: contact cap reached (7 attempts about this debt in the last 7 days, at most 7)"
    sent = next(e for e in await engine.timeline("CAPPED") if e["kind"] == "sent")
    assert sent["detail"]["dropped"]["voice"] == reason
    # The sent step names the one planned after it, as the case holds it.
    after = await engine.state("FREE")
    assert after["next_step"] == "final_notice"
    assert steps["C-2"].next_step == NextStep(step_name="final_notice", at=datetime.fromisoformat(after["next_at"]))
    # The held channel is a fact of its own (insights counts what the caps held back), classified by the rule.
    held = [e.data for e in await engine.events(type_="dunning.step.held")]
    assert held == [
        DunningStepHeld(customer_id="C-1", step_name="call_escalation", policy_id="default", invoice_ids=["CAPPED"],
                        held=[ChannelHold(channel="voice", rule="contact_cap", reason=reason)], sent=True,
                        moved_to=None)
    ]  # fmt: skip

    # A step with no channel left moves to the instant the cap frees up, and the held event says when.
    async with engine.api("globex-admin-key") as admin:
        only_voice = {"steps": [{"name": "call", "offset_days": 70, "channels": ["voice"], "template_id": "call",
                                 "tone": "urgent"}]}  # fmt: skip
        assert (await admin.put("/v1/policies/default", json=only_voice)).status_code == 200
    await engine.publish(customer("C-9", voice=True), *calls("C-9", "MOVED", 7), tenant="globex")
    await engine.quiet()
    await engine.publish(invoice("MOVED", "C-9", due=overdue), tenant="globex")
    await engine.quiet()
    async with engine.api("globex-api-key") as globex:
        state = (await globex.get("/v1/invoices/MOVED/dunning")).json()
    [globex_held] = [e for e in await engine.events(type_="dunning.step.held") if e.tenant_id == "globex"]
    assert globex_held.data.held[0].rule == "contact_cap" and not globex_held.data.sent
    assert globex_held.data.moved_to is not None
    assert globex_held.data.moved_to == datetime.fromisoformat(state["next_at"]) > engine.clock.now()
    assert "C-9" not in {s.customer_id for s in await engine.steps_due()}
    # What the engine published comes back from its events export (insights backfills from it), its tenant's only.
    acme = [e for e in await engine.events() if e.tenant_id == "acme"]  # the steps due and the held one
    await assert_exported(engine.svc, acme, "acme-api-key", "globex-api-key")


async def test_a_call_whose_outcome_is_unknown_counts_toward_the_voice_cap(engine: EngineHarness) -> None:
    # Six calls sent each, then a seventh whose outcome is unknown (it may have rung) for C-1, and a seventh
    # that certainly failed (nothing reached the debtor) for C-2.
    def seventh(cid: str, invoice_id: str, unknown: bool) -> NotificationFailed:
        return NotificationFailed(customer_id=cid, delivery_id=f"{cid}-call-6", step_id="s", channel="voice",
                                  invoice_ids=[invoice_id], reason="twilio: server error 500", permanent=True,
                                  outcome_unknown=unknown)  # fmt: skip

    await engine.publish(customer("C-1", voice=True), customer("C-2", voice=True))
    await engine.publish(*calls("C-1", "UNKNOWN", 6), seventh("C-1", "UNKNOWN", True))
    await engine.publish(*calls("C-2", "FAILED", 6), seventh("C-2", "FAILED", False))
    await engine.quiet()
    overdue = engine.today - timedelta(days=70)
    await engine.publish(invoice("UNKNOWN", "C-1", due=overdue), invoice("FAILED", "C-2", due=overdue))
    await engine.quiet()

    steps = {s.customer_id: s for s in await engine.steps_due()}
    assert steps["C-1"].channels == ["task"], "the call that may have rung is the seventh attempt"
    assert steps["C-2"].channels == ["voice", "task"], "a call that certainly failed was no attempt"
    sent = next(e for e in await engine.timeline("UNKNOWN") if e["kind"] == "sent")
    assert sent["detail"]["dropped"]["voice"] == (
        "voice: contact cap reached (7 attempts about this debt in the last 7 days, at most 7)"
    )


async def test_no_sms_without_consent_and_an_opted_out_channel_is_never_used(engine: EngineHarness) -> None:
    await engine.publish(customer("C-1", sms=False), customer("C-2", sms=True), customer("C-3"))
    await engine.publish(ConsentRevoked(customer_id="C-3", channel="email", reason="unsubscribe"))
    await engine.quiet()
    overdue = engine.today - timedelta(days=63)  # sms escalation: sms + email
    await engine.publish(invoice("A", "C-1", due=overdue), invoice("B", "C-2", due=overdue),
                         invoice("C", "C-3", due=engine.today + timedelta(days=3)))  # fmt: skip
    await engine.quiet()

    steps = {s.customer_id: s for s in await engine.steps_due()}
    assert steps["C-1"].channels == ["email"]
    assert steps["C-2"].channels == ["sms", "email"]
    assert "C-3" not in steps  # its only channel is email, which it opted out of
    skipped = next(e for e in await engine.timeline("C") if e["kind"] == "skipped")
    assert skipped["reason"] == "pre_due_reminder: no allowed channel: email: the customer opted out"
    dropped = next(e for e in await engine.timeline("A") if e["kind"] == "sent")["detail"]["dropped"]
    assert dropped == {"sms": "sms: no consent on record"}


async def test_a_step_reached_after_hours_moves_to_8_local_and_goes_out_late_saying_so(
    engine: EngineHarness,
    database_url: str,
    broker,
    clock,  # type: ignore[no-untyped-def]
) -> None:
    la = ZoneInfo("America/Los_Angeles")
    await engine.publish(customer("C-1", time_zone="America/Los_Angeles", country="US"),
                         invoice("INV-1", due=engine.today + timedelta(days=10)))  # fmt: skip
    await engine.quiet()
    planned = datetime.fromisoformat((await engine.state("INV-1"))["next_at"])
    assert planned.astimezone(la).hour == 10

    # The engine is down while the step's moment passes; it comes back at 21:30 in Los Angeles.
    await engine.svc.stop()
    clock.set(datetime(2026, 3, 10, 21, 30, tzinfo=la))
    engine.services[0] = await start_engine(database_url, broker, clock)
    await engine.quiet()
    assert await engine.steps_due() == []
    moved = (await engine.timeline("INV-1"))[-1]
    assert moved["kind"] == "scheduled" and "outside the debtor's contact window" in moved["reason"]
    assert datetime.fromisoformat(moved["detail"]["planned_at"]) == datetime(2026, 3, 11, 8, 0, tzinfo=la)

    await engine.next_moment("INV-1")
    (step,) = await engine.steps_due()
    assert step.late and step.step_name == "pre_due_reminder"
    sent = next(e for e in await engine.timeline("INV-1") if e["kind"] == "sent")
    assert "late (planned for" in sent["reason"] and sent["at"] == "2026-03-11T15:00:00+00:00"


def synced(at: datetime) -> LedgerSynced:
    return LedgerSynced(customer_id=TENANT_WIDE, connector="qbo", succeeded=True, started_at=at, finished_at=at,
                        last_successful_sync_at=at)  # fmt: skip


async def test_a_stale_ledger_sends_nothing_and_says_why_until_a_sync_succeeds(engine: EngineHarness) -> None:
    await engine.publish(synced(engine.clock.now()))
    await engine.publish(customer("C-1"), invoice("INV-1", due=engine.today + timedelta(days=3)))
    # An API-only tenant (no connector ever reported a sync) is never stale.
    await engine.publish(
        customer("G-1"), invoice("G-INV", "G-1", due=engine.today + timedelta(days=3)), tenant="globex"
    )
    await engine.quiet()
    await engine.advance(days=3)  # the due-date notice's moment; the last sync is 72h old

    steps = await engine.steps_due()
    assert [(s.customer_id, s.step_name) for s in steps if s.customer_id == "C-1"] == [("C-1", "pre_due_reminder")]
    assert ("G-1", "due_date_notice") in [(s.customer_id, s.step_name) for s in steps]
    paused = (await engine.timeline("INV-1"))[-1]
    assert paused["kind"] == "paused"
    assert paused["reason"].startswith("paused: the ledger data is stale (connector qbo last synced successfully at")

    failed = LedgerSynced(customer_id=TENANT_WIDE, connector="qbo", succeeded=False, started_at=engine.clock.now(),
                          finished_at=engine.clock.now(), last_successful_sync_at=None, error="401 from QuickBooks")  # fmt: skip
    await engine.publish(failed)
    await engine.quiet()
    assert (await engine.state("INV-1"))["paused_by"] == ["stale_ledger"]  # a failed sync is no freshness

    await engine.publish(synced(engine.clock.now()))
    await engine.quiet()
    assert [e["kind"] for e in await engine.timeline("INV-1")][-3:] == ["resumed", "sent", "scheduled"]
    assert (await engine.steps_due())[-1].step_name == "due_date_notice"


def imported(at: datetime) -> LedgerSynced:
    """ledger-sync's report of a finished CSV import: a push by the tenant, not a scheduled connector."""
    return LedgerSynced(customer_id=TENANT_WIDE, connector="csv", succeeded=True, started_at=at, finished_at=at,
                        last_successful_sync_at=at, scheduled=False)  # fmt: skip


async def stale_gauge(engine: EngineHarness) -> str:
    async with engine.api() as api:
        text = (await api.get("/metrics")).text
    return next((line.split()[-1] for line in text.splitlines()
                 if line.startswith('policy_engine_ledger_stale{tenant_id="acme"}')), "absent")  # fmt: skip


async def test_a_tenant_that_imports_files_is_never_stale_unless_it_declares_an_import_cadence(
    engine: EngineHarness,
) -> None:
    await engine.publish(imported(engine.clock.now()))
    await engine.publish(customer("C-1"), invoice("INV-1", due=engine.today + timedelta(days=3)))
    await engine.quiet()
    await engine.advance(days=3)  # 72h after the only import: the due-date notice still goes out

    assert [s.step_name for s in await engine.steps_due()] == ["pre_due_reminder", "due_date_notice"]
    async with engine.api() as api:
        fresh = (await api.get("/v1/ledger-freshness")).json()
    assert fresh["stale"] is False and fresh["import_cadence"] is None
    assert [(s["connector"], s["scheduled"]) for s in fresh["sources"]] == [("csv", False)]

    # The tenant declares it imports at least daily: the 72h-old import now makes its ledger stale.
    async with engine.api("acme-admin-key") as admin:
        assert (
            await admin.put("/v1/ledger-freshness/import-cadence", json={"expected_every_hours": 0})
        ).status_code == 422
        r = await admin.put("/v1/ledger-freshness/import-cadence", json={"expected_every_hours": 24})
        assert r.status_code == 200, r.text
        assert r.json()["stale"] is True
        assert r.json()["reason"].startswith("the last import finished at 2026-03-02T09:00:00+00:00, more than 24h ago")
    async with engine.api() as api:  # a tenant key reads the freshness but may not change the cadence
        assert (
            await api.put("/v1/ledger-freshness/import-cadence", json={"expected_every_hours": 48})
        ).status_code == 403
    await engine.next_moment("INV-1")  # follow_up_1's moment
    assert [s.step_name for s in await engine.steps_due()] == ["pre_due_reminder", "due_date_notice"]
    paused = (await engine.timeline("INV-1"))[-1]
    assert paused["kind"] == "paused" and "(the tenant expects one every 24h)" in paused["reason"]
    assert await stale_gauge(engine) == "1.0"

    await engine.publish(imported(engine.clock.now()))  # a fresh import resumes dunning at once
    await engine.quiet()
    assert [s.step_name for s in await engine.steps_due()][-1] == "follow_up_1"
    assert await stale_gauge(engine) == "0.0"


async def test_a_disabled_connector_no_longer_makes_the_ledger_stale(engine: EngineHarness) -> None:
    await engine.publish(synced(engine.clock.now()))
    await engine.publish(customer("C-1"), invoice("INV-1", due=engine.today + timedelta(days=3)))
    await engine.quiet()
    await engine.advance(days=3)
    assert (await engine.state("INV-1"))["paused_by"] == ["stale_ledger"]

    now = engine.clock.now()
    disabled = LedgerSynced(customer_id=TENANT_WIDE, connector="qbo", succeeded=False, started_at=now,
                            finished_at=now, last_successful_sync_at=now - timedelta(days=3),
                            error="connector disabled: no scheduled syncs", scheduled=False)  # fmt: skip
    await engine.publish(disabled)
    await engine.quiet()
    assert (await engine.state("INV-1"))["paused_by"] == []
    assert [s.step_name for s in await engine.steps_due()][-1] == "due_date_notice"
