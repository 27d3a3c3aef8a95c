"""The pure translation of events and export items into fact rows (domain/facts.py): each fact's natural key,
its business date and its sign, and the same rows whether a ledger fact comes from an event or the export."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from dunning_events.events import (
    EVENT_TYPES,
    ChannelHold,
    ConsentRevoked,
    DunningStepHeld,
    NotificationHeld,
    PlanCreated,
    PromiseBroken,
)
from insights.domain import facts as f
from insights.service_layer.handlers import HANDLERS

from .factories import (
    T0,
    alloc,
    at,
    credit,
    customer,
    dispute,
    ev,
    invoice,
    payment,
    promise,
    reversal,
    sent,
    step_due,
    voided,
)

# Types that carry no fact of the read model: a sync's freshness signal, a held delivery's new window.
# Issue 16's calls, collector tasks and completed hand-offs: not read by insights yet (the policy engine's timeline
# shows them).
NO_FACT = {
    "ledger.synced", "dunning.step.replanned", "dunning.call.logged", "dunning.task.assigned", "dunning.task.snoozed",
    "dunning.task.completed", "dunning.hand_off.completed",
}  # fmt: skip


def test_every_event_type_that_carries_a_fact_has_a_handler() -> None:
    handled = set(HANDLERS.by_type)
    assert handled == set(EVENT_TYPES) - NO_FACT


def test_an_invoice_without_a_due_date_ages_from_its_issue_date() -> None:
    facts = f.Facts()
    f.add_invoice_snapshot(facts, invoice("A", due=None, issue=date(2026, 2, 1)))
    (row,) = facts.invoices
    assert row["due_date"] == date(2026, 2, 1) and row["ledger_version"] == 1
    assert facts.changes == [] and facts.closes == []  # issue and prior are restated from the row by the applier


def test_payment_reversal_and_credit_are_signed_changes_at_their_business_dates() -> None:
    facts = f.Facts()
    f.add_payment(facts, payment("P1", [alloc("A", "40", "60", 2)], received=date(2026, 3, 5), when=at(4)))
    f.add_reversal(facts, reversal("P1", [alloc("A", "40", "100", 3)], when=datetime(2026, 3, 9, 23, 30, tzinfo=UTC)))
    f.add_credit(facts, credit("N1", [alloc("A", "10", "90", 4)], issued=date(2026, 3, 10), when=at(9)))
    assert [(c["change_key"], c["kind"], c["on_date"], c["amount"]) for c in facts.changes] == [
        ("payment:P1", "payment", date(2026, 3, 5), Decimal("-40")),
        ("reversal:P1", "reversal", date(2026, 3, 9), Decimal("40")),  # the UTC date of its occurred_at
        ("credit:N1", "credit", date(2026, 3, 10), Decimal("-10")),
    ]
    assert [(b["balance"], b["ledger_version"]) for b in facts.balances] == [
        (Decimal("60"), 2), (Decimal("100"), 3), (Decimal("90"), 4)
    ]  # fmt: skip


def test_a_void_and_a_write_off_are_closes_whose_amount_the_model_knows() -> None:
    facts = f.Facts()
    f.add_invoice_snapshot(facts, voided("A", version=5, when=at(20)))
    f.add_invoice_snapshot(facts, voided("B", status="written_off", version=3, when=at(21)))
    assert [(c["kind"], c["on_date"], c["amount"]) for c in facts.closes] == [
        ("void", date(2026, 3, 22), None), ("write_off", date(2026, 3, 23), None)
    ]  # fmt: skip


def test_the_export_item_gives_the_rows_the_events_give() -> None:
    from_events = f.Facts()
    for env in (
        invoice("A", total="100", version=1),
        payment("P1", [alloc("A", "40", "60", 2)], received=date(2026, 3, 5), when=at(4)),
        reversal("P1", [alloc("A", "40", "100", 3)], when=at(7)),
        credit("N1", [alloc("A", "10", "90", 4)], issued=date(2026, 3, 10), when=at(9)),
        voided("A", status="written_off", version=5, when=at(20)),
        dispute("A", opened=True, version=6, when=at(21)),
    ):
        handler = {
            "invoice.created": f.add_invoice_snapshot, "invoice.voided": f.add_invoice_snapshot,
            "payment.applied": f.add_payment, "payment.reversed": f.add_reversal,
            "credit_note.applied": f.add_credit, "dispute.opened": f.add_dispute_opened,
        }[env.type]  # fmt: skip
        handler(from_events, env)
    item: dict[str, Any] = {
        "invoice_id": "A", "customer_id": "C1", "number": "N-A", "currency": "EUR", "total": "100.00",
        "balance": "0.00", "issue_date": "2026-03-02", "due_date": "2026-04-01", "terms": "net30",
        "status": "written_off", "disputed": True, "version": 6,
        "payments": [{"payment_id": "P1", "received_on": "2026-03-05", "amount": "40.00",
                      "reversed_at": at(7).isoformat()}],
        "credits": [{"credit_note_id": "N1", "issued_on": "2026-03-10", "amount": "10.00"}],
        "closed": {"status": "written_off", "closed_at": at(20).isoformat(), "amount": "90.00"},
        "disputes": [{"opened_at": at(21).isoformat(), "resolved_at": None}],
    }  # fmt: skip
    from_export = f.Facts()
    f.add_export_invoice(from_export, "acme", item)

    def changes(facts: f.Facts) -> set[tuple[Any, ...]]:
        return {(c["change_key"], c["on_date"], c["amount"]) for c in facts.changes}

    assert changes(from_export) == changes(from_events)
    assert [(c["kind"], c["on_date"]) for c in from_export.closes] == [
        (c["kind"], c["on_date"]) for c in from_events.closes
    ]
    assert from_export.closes[0]["amount"] == Decimal("90.00")  # the balance the write-off cancelled
    assert [d["opened_at"] for d in from_export.disputes_opened] == [
        d["opened_at"] for d in from_events.disputes_opened
    ]
    assert from_export.invoices[0]["ledger_version"] == 6 and from_export.invoices[0]["disputed"] is True


def test_an_erased_customer_in_the_export_keeps_its_pseudonym() -> None:
    facts = f.Facts()
    f.add_export_customer(facts, "acme", {"customer_id": "C1", "name": "erased-1a2b", "segment": None, "erased": True})
    f.add_export_customer(facts, "acme", {"customer_id": "C2", "name": "Globex", "segment": "smb", "erased": False})
    assert facts.erasures == [{"tenant_id": "acme", "customer_id": "C1", "name": "erased-1a2b"}]
    assert facts.customers == [{"tenant_id": "acme", "customer_id": "C2", "name": "Globex", "segment": "smb"}]


def test_steps_deliveries_and_holds() -> None:
    facts = f.Facts()
    f.add_step_due(facts, step_due("S1", {"A": "60", "B": "40"}, when=datetime(2026, 3, 9, 23, 59, tzinfo=UTC)))
    (step,) = facts.steps
    assert step["sent_on"] == date(2026, 3, 9) and step["channels"] == ["email"]
    assert [(si["invoice_id"], si["balance"]) for si in facts.step_invoices] == [
        ("A", Decimal("60")),
        ("B", Decimal("40")),
    ]
    f.add_delivery(facts, sent("D1", "S1", when=at(8)))
    f.add_delivery(facts, sent("D1", "S1", when=at(8.1), delivered=True))
    assert [d.get("sent_at") for d in facts.deliveries] == [at(8), None]
    assert facts.deliveries[1]["delivered_at"] == at(8.1)
    held = ev(
        NotificationHeld(customer_id="C1", delivery_id="D2", step_id="S1", channel="sms", held_at=at(9),
                         reason="outside 08:00-21:00"),
        at(9),
    )  # fmt: skip
    f.add_delivery(facts, held)
    assert facts.contact_holds == [
        {"tenant_id": "acme", "hold_key": "D2", "channel": "sms", "customer_id": "C1", "held_on": date(2026, 3, 11),
         "rule": "quiet_hours", "reason": "outside 08:00-21:00"}
    ]  # fmt: skip


def test_a_step_held_event_is_one_hold_per_channel_keyed_by_the_event() -> None:
    facts = f.Facts()
    held = DunningStepHeld(
        customer_id="C1", step_name="reminder", policy_id="p1", invoice_ids=["A"],
        held=[ChannelHold(channel="sms", rule="contact_cap", reason="7 in 7 days"),
              ChannelHold(channel="voice", rule="consent", reason="no consent")],
    )  # fmt: skip
    env = ev(held, T0, tenant="acme")
    f.add_step_held(facts, env)
    assert [(h["hold_key"], h["channel"], h["rule"], h["held_on"]) for h in facts.contact_holds] == [
        (str(env.id), "sms", "contact_cap", T0.date()), (str(env.id), "voice", "consent", T0.date())
    ]  # fmt: skip


def test_promises_plans_and_consent() -> None:
    facts = f.Facts()
    for env in promise("PR1", when=at(1), kept_at=at(5)):
        (f.add_promise_created if env.type == "promise.created" else f.add_promise_outcome)(facts, env)
    broken = ev(
        PromiseBroken(customer_id="C1", promise_id="PR2", invoice_ids=["A"], currency="EUR", amount=Decimal("50"),
                      received=Decimal("20"), shortfall=Decimal("30"), partially_kept=True, deadline=at(9),
                      broken_promise_count=1),
        at(9),
    )  # fmt: skip
    f.add_promise_outcome(facts, broken)
    assert facts.promises[0]["status"] == "open" and facts.promises[0]["created_at"] == at(1)
    assert [(o["promise_id"], o["status"], o["received"], o["partially_kept"]) for o in facts.promise_outcomes] == [
        ("PR1", "kept", Decimal("50"), False), ("PR2", "broken", Decimal("20"), True)
    ]  # fmt: skip
    plan = ev(PlanCreated(customer_id="C1", plan_id="PL1", invoice_ids=["A"], currency="EUR", total=Decimal("90"),
                          instalments=[]), at(2))  # fmt: skip
    f.add_plan_created(facts, plan)
    assert facts.plans[0]["status"] == "active" and facts.plans[0]["instalments"] == 0
    f.add_consent_revoked(facts, ev(ConsentRevoked(customer_id="C1", channel="sms", reason="stop_reply"), at(3)))
    assert facts.consent_revocations[0]["revoked_at"] == at(3)
    f.add_customer(facts, customer("C9", segment="enterprise"))
    assert facts.customers[0]["segment"] == "enterprise"


def test_open_and_settled_follow_business_dates_not_arrival_order() -> None:
    d = date(2026, 3, 1)
    issue = f.Change("issue", "issue", d, Decimal(100))
    paid = f.Change("payment:P1", "payment", date(2026, 3, 5), Decimal(-100))
    reversed_ = f.Change("reversal:P1", "reversal", date(2026, 3, 7), Decimal(100))
    paid_again = f.Change("payment:P2", "payment", date(2026, 3, 9), Decimal(-100))
    # The reversal arrived first; in business order the payment still closed it before the reversal reopened it.
    assert f.open_deltas([reversed_, paid, issue]) == {"issue": 1, "payment:P1": -1, "reversal:P1": 1}
    assert f.settled_on([reversed_, paid, issue], Decimal(100)) is None
    assert f.settled_on([issue, paid, reversed_, paid_again], Decimal(0)) == date(2026, 3, 9)
    written_off = f.Change("write_off", "write_off", date(2026, 3, 9), Decimal(-100))
    assert f.settled_on([issue, written_off], Decimal(0)) is None  # closed, not settled
