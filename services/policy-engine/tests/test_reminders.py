"""A one-off reminder now, on the real stack (PostgreSQL, broker, simulated clock): allowed, it is one
dunning.step.due and a `sent` entry naming the person, once per Idempotency-Key, and the case's schedule is untouched;
refused, a 409 names the timer's rule (and when a time rule ends, `not_before`) and nothing is written."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dunning_events.events import ConsentRevoked, CustomerErased, NotificationSent
from dunning_kit.actor import Actor
from policy_engine.service_layer import reminders

from .conftest import EngineHarness, customer, invoice, payment

BERLIN = ZoneInfo("Europe/Berlin")


async def _remind(engine: EngineHarness, cid: str, key: str | None = None, **body: Any) -> Any:
    async with engine.api() as api:
        return await api.post(f"/v1/customers/{cid}/reminders", json=body,
                              headers={"Idempotency-Key": key} if key else {})  # fmt: skip


async def _one_offs(engine: EngineHarness) -> list[Any]:
    return [s for s in await engine.steps_due() if s.step_name == reminders.ONE_OFF_STEP]


async def test_a_reminder_now_is_one_step_for_the_notifier_once_per_key_and_leaves_the_schedule_alone(
    engine: EngineHarness,
) -> None:
    await engine.publish(customer("C-1"), customer("C-2"))
    await engine.publish(
        invoice("A", "C-1", due=engine.today - timedelta(days=1)),  # waits for follow_up_1
        invoice("B", "C-1", due=engine.today - timedelta(days=1), amount="250.00"),
        invoice("OTHER", "C-2", due=engine.today),
    )  # fmt: skip
    await engine.quiet()
    before = await engine.state("A")

    first = await _remind(engine, "C-1", "remind-1")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["channel"], body["template_id"], body["invoice_ids"]) == ("email", "gentle_follow_up", ["A", "B"])
    again = await _remind(engine, "C-1", "remind-1")
    assert again.status_code == 201 and again.json() == body  # the replay is the first answer, not a second step
    await engine.quiet()
    (step,) = await _one_offs(engine)
    assert step.step_id == body["step_id"] and step.channels == ["email"] and step.template_id == "gentle_follow_up"
    assert [i.invoice_id for i in step.invoices] == ["A", "B"] and str(step.amount_due) == "1250.00"
    assert step.fees == [] and step.actions == [] and step.deliver_from <= engine.clock.now() < step.deliver_until
    entry = next(e for e in await engine.timeline("A") if e["step"] == reminders.ONE_OFF_STEP)
    assert entry["kind"] == "sent" and entry["detail"]["step_id"] == body["step_id"]
    after = await engine.state("A")
    assert (after["next_step"], after["next_at"]) == (before["next_step"], before["next_at"])

    # The person (the workspace's Dunning-Actor, wired at the service layer) is named on the timeline.
    runtime = engine.svc.runtime
    colin = Actor(sub="sub-colin", name="Colin Collector", email="colin@acme.test", role="collector", tenant="acme")
    async with runtime.sessions() as session, session.begin():
        sent = await reminders.remind_now(
            session, runtime.outbox, runtime.objects.config, runtime.objects.book, "acme", "C-1",
            invoice_ids=["B"], channel="letter", template="final_notice", now=engine.clock.now(), actor=colin,
        )  # fmt: skip
    entry = [e for e in await engine.timeline("B") if e["step"] == reminders.ONE_OFF_STEP][-1]
    assert entry["reason"].endswith("sent to the notifier at the request of Colin Collector")
    assert entry["detail"]["actor"] == {"sub": "sub-colin", "name": "Colin Collector"}
    assert sent.invoice_ids == ["B"] and sent.channel == "letter"
    assert all(e["step"] != reminders.ONE_OFF_STEP for e in await engine.timeline("OTHER"))

    # Bad input is refused whole, naming the field.
    assert (await _remind(engine, "NOBODY")).status_code == 404
    wrong = await _remind(engine, "C-1", invoice_ids=["A", "OTHER", "GHOST"])
    assert wrong.status_code == 422
    assert [e["field"] for e in wrong.json()["errors"]] == ["invoice_ids[1]", "invoice_ids[2]"]
    fax = await _remind(engine, "C-1", channel="fax")
    assert fax.status_code == 422 and fax.json()["errors"][0]["field"].endswith("channel")
    await engine.quiet()
    assert len(await _one_offs(engine)) == 2


async def test_each_contact_rule_refuses_a_reminder_now_with_a_409_naming_it_and_writes_nothing(
    engine: EngineHarness,
) -> None:
    async with engine.api("acme-admin-key") as admin:
        base = (await admin.get("/v1/policies/default")).json()
        caps = [*base["contact_caps"], {"channel": "email", "max_attempts": 1, "per_days": 7, "per": "debtor"}]
        doc = {k: v for k, v in base.items() if k != "version"} | {"contact_caps": caps}
        assert (await admin.put("/v1/policies/default", json=doc)).status_code == 200
    ids = ("PAUSED", "PAID", "OPTED", "CAPPED", "ERASED", "LATE")
    await engine.publish(*(customer(c) for c in ids))
    await engine.publish(
        invoice("I-PAUSED", "PAUSED", due=engine.today - timedelta(days=5), disputed=True),
        *(invoice(f"I-{c}", c, due=engine.today - timedelta(days=5)) for c in ids[1:]),
    )  # fmt: skip
    await engine.publish(
        payment("I-PAID", "1000.00", "0.00", cid="PAID"),
        ConsentRevoked(customer_id="OPTED", channel="email", reason="unsubscribe"),
        CustomerErased(customer_id="ERASED", erased_at=engine.clock.now(), pseudonym="erased-1"),
        NotificationSent(customer_id="CAPPED", delivery_id="D-1", step_id="s", channel="email",
                         invoice_ids=["I-CAPPED"]),
    )  # fmt: skip
    await engine.quiet()
    sent_at = engine.clock.now()

    async def refused(cid: str, **body: Any) -> dict[str, Any]:
        r = await _remind(engine, cid, **body)
        assert r.status_code == 409, r.text
        problem: dict[str, Any] = r.json()
        return problem

    paused = await refused("PAUSED")  # left out of the open ones: nothing is left to remind
    assert paused["errors"][0]["field"] == "paused" and "disputed" in paused["errors"][0]["reason"]
    assert (await refused("PAUSED", invoice_ids=["I-PAUSED"]))["errors"][0]["field"] == "paused"
    paid = await refused("PAID", invoice_ids=["I-PAID"])
    assert paid["errors"][0] == {"field": "closed", "reason": "invoice N-I-PAID: cancelled: the invoice was paid",
                                 "location": "rule"}  # fmt: skip
    opted = await refused("OPTED")
    assert opted["errors"][0]["field"] == "consent" and "opted out" in opted["errors"][0]["reason"]
    assert "not_before" not in opted
    capped = await refused("CAPPED")
    assert capped["errors"][0]["field"] == "contact_cap"
    assert capped["errors"][0]["reason"].startswith("invoice N-I-CAPPED: email: contact cap reached (1 attempts")
    assert datetime.fromisoformat(capped["not_before"]) >= sent_at + timedelta(days=7)
    assert (await _remind(engine, "CAPPED", channel="letter")).status_code == 201  # the cap is the email one's
    erased = await refused("ERASED")
    assert erased["errors"][0]["field"] == "erased"

    # 21:30 in Berlin: quiet hours; the earliest moment is 08:00 the next business morning, the debtor's time.
    engine.clock.set(datetime(2026, 3, 2, 21, 30, tzinfo=BERLIN))
    late = await refused("LATE")
    assert late["errors"][0]["field"] == "contact_window"
    assert datetime.fromisoformat(late["not_before"]) == datetime(2026, 3, 3, 8, tzinfo=BERLIN)
    await engine.quiet()
    assert [s.customer_id for s in await _one_offs(engine)] == ["CAPPED"]
    for cid in ("PAUSED", "PAID", "OPTED", "ERASED", "LATE"):
        assert all(e["step"] != reminders.ONE_OFF_STEP for e in await engine.timeline(f"I-{cid}"))
