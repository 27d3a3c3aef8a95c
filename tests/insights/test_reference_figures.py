"""The reference figures on small ledgers checked by hand (a textbook CEI, a countback walked month by month, every
aging boundary, what counts as collected, written off and disputed), and the synthetic ledger itself: the same
seed gives the same ledger, it has every kind of fact the issue asks for, and the feed plan is one the services
accept (replayed with the ledger's rules)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tests.insights.ledger_feed import FeedRefused, plan_feed, replay
from tests.insights.reference_figures import ReferenceBook, intervals, month_windows
from tests.insights.synthetic_ledger import (
    Allocation,
    Closure,
    CreditNote,
    Customer,
    Dispute,
    Invoice,
    Payment,
    Plan,
    Promise,
    Reversal,
    SyntheticLedger,
    generate,
)

D = Decimal


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def inv(
    invoice_id: str, total: str, issued: date, due: date | None, customer: str = "C-1", currency: str = "EUR"
) -> Invoice:
    return Invoice(invoice_id, customer, invoice_id, currency, D(total), issued, due, None)


def pay(payment_id: str, on: date, *allocations: tuple[str, str], customer: str = "C-1") -> Payment:
    allocs = tuple(Allocation(i, D(a)) for i, a in allocations)
    return Payment(payment_id, customer, "EUR", sum((a.amount for a in allocs), D(0)), on, allocs)


def book(invoices: list[Invoice], payments: list[Payment] = (), **facts: list) -> ReferenceBook:  # type: ignore[assignment,type-arg]
    customers = [Customer("C-1", "One", "enterprise", "EUR"), Customer("C-2", "Two", "smb", "EUR")]
    ledger = SyntheticLedger(
        seed=0, start=date(2025, 1, 1), end=date(2026, 12, 31), customers=customers, invoices=invoices,
        payments=list(payments), credit_notes=facts.get("credit_notes", []), reversals=facts.get("reversals", []),
        closures=facts.get("closures", []), disputes=facts.get("disputes", []), promises=facts.get("promises", []),
        plans=facts.get("plans", []),
    )  # fmt: skip
    return ReferenceBook(ledger)


MARCH = (date(2026, 3, 1), date(2026, 3, 31))


def textbook() -> ReferenceBook:
    """1,000,000 owed at the start of March (overdue), 600,000 sold in March (due in April), 700,000 and 100,000
    collected: 800,000 owed at the end of March, of which 500,000 is current."""
    return book(
        [inv("A", "1000000.00", date(2026, 1, 15), date(2026, 2, 14)),
         inv("B", "600000.00", date(2026, 3, 5), date(2026, 4, 4))],
        [pay("P-1", date(2026, 3, 10), ("A", "700000.00")), pay("P-2", date(2026, 3, 20), ("B", "100000.00"))],
    )  # fmt: skip


def test_cei_of_the_textbook_example_is_800000_over_1100000() -> None:
    cei = textbook().cei(*MARCH, "EUR")
    # (1,000,000 + 600,000 - 800,000) / (1,000,000 + 600,000 - 500,000) x 100
    assert cei is not None and cei.quantize(D("0.01")) == D("72.73")
    assert cei == D(800000) / D(1100000) * 100


def test_dso_standard_best_possible_and_add_of_the_textbook_example() -> None:
    dso = textbook().dso(*MARCH, "EUR")
    assert (dso.ar, dso.credit_sales, dso.days) == (D("800000.00"), D("600000.00"), 31)
    assert dso.dso_standard == D(800000) / D(600000) * 31  # 41.33 days
    assert dso.best_possible_dso == D(500000) / D(600000) * 31  # 25.83 days
    assert dso.add is not None and dso.add.quantize(D("0.01")) == D("15.50")


def test_countback_walks_months_back_through_a_month_without_sales() -> None:
    # AR(31 Mar) 800,000: March's 600,000 fits (31 days), February sold nothing (28 days), January's 1,000,000
    # does not fit: 200,000 / 1,000,000 of its 31 days = 6.2. Total 65.2 days.
    assert textbook().dso(*MARCH, "EUR").dso_countback == D("65.2")


def test_countback_first_window_is_the_part_of_the_month_up_to_to() -> None:
    ref = book(
        [
            inv("A", "300.00", date(2026, 3, 2), date(2026, 4, 1)),
            inv("B", "100.00", date(2026, 2, 10), date(2026, 3, 12)),
        ]
    )
    # AR(10 Mar) = 400: [1..10 Mar] sold 300 (10 days), then February's 100 fits exactly (28 days): nothing is
    # left, the walk ends (January, which sold nothing, adds no days).
    assert ref.dso(date(2026, 3, 1), date(2026, 3, 10), "EUR").dso_countback == 10 + 28
    ref = book([inv("A", "300.00", date(2026, 3, 2), date(2026, 4, 1)), inv("B", "100.00", date(2026, 2, 10), None)],
               [pay("P", date(2026, 3, 5), ("B", "50.00"))])  # fmt: skip
    # AR(10 Mar) = 350: March's 300 fits (10 days), then 50 / 100 of February's 28 days.
    assert ref.dso(date(2026, 3, 1), date(2026, 3, 10), "EUR").dso_countback == D(24)


def test_dso_without_credit_sales_is_unknown_but_countback_still_walks_back() -> None:
    dso = textbook().dso(date(2026, 2, 1), date(2026, 2, 28), "EUR")
    assert dso.ar == D("1000000.00") and dso.credit_sales == 0
    assert (dso.dso_standard, dso.best_possible_dso, dso.add) == (None, None, None)
    assert dso.dso_countback == 28 + 31  # February sold nothing, January's 1,000,000 is exactly covered
    assert textbook().dso(date(2025, 1, 1), date(2025, 1, 31), "EUR").dso_countback is None  # no sales in 36 months
    paid = book([inv("A", "10.00", date(2026, 3, 1), None)], [pay("P", date(2026, 3, 2), ("A", "10.00"))])
    assert paid.dso(*MARCH, "EUR").dso_countback == 0  # nothing owed: 0 days


AS_OF = date(2026, 3, 31)


def test_aging_buckets_at_every_boundary() -> None:
    ref = book(
        [
            inv("CUR", "100.00", date(2026, 3, 1), date(2026, 4, 10)),
            inv("DUE-TODAY", "10.00", date(2026, 3, 1), date(2026, 3, 31)),  # due_date >= D: current
            inv("LATE-1", "100.00", date(2026, 3, 1), date(2026, 3, 30)),  # 40 paid: 60 in 1-30
            inv("LATE-30", "30.00", date(2026, 2, 1), date(2026, 3, 1)),
            inv("LATE-31", "31.00", date(2026, 1, 1), date(2026, 2, 28)),
            inv("NO-DUE", "89.00", date(2026, 1, 1), None),  # due on issue: 89 days late
            inv("LATE-90", "90.00", date(2025, 12, 1), date(2025, 12, 31)),
            inv("LATE-91", "91.00", date(2025, 12, 1), date(2025, 12, 30)),
            inv("PAID", "500.00", date(2026, 1, 1), date(2026, 1, 31)),
            inv("PAID-LATER", "7.00", date(2026, 3, 1), date(2026, 3, 20)),  # paid after D: still owed at D
            inv("VOID-LATER", "8.00", date(2026, 3, 1), date(2026, 3, 25)),  # voided after D: still owed at D
            inv("VOID", "900.00", date(2026, 3, 1), date(2026, 3, 25)),
            inv("BOUNCED", "5.00", date(2026, 2, 1), date(2026, 3, 2)),  # paid, reversed: owed again
            inv("CREDITED", "20.00", date(2026, 3, 1), date(2026, 4, 30)),  # 20 credited: settled
            inv("FUTURE", "1000.00", date(2026, 4, 1), date(2026, 5, 1)),  # not issued yet at D
        ],
        [pay("P-1", date(2026, 3, 15), ("LATE-1", "40.00"), ("PAID", "500.00")),
         pay("P-2", date(2026, 4, 2), ("PAID-LATER", "7.00")), pay("P-3", date(2026, 3, 3), ("BOUNCED", "5.00"))],
        reversals=[Reversal("P-3", noon(date(2026, 3, 10)))],
        closures=[Closure("VOID-LATER", "void", noon(date(2026, 4, 1)), D("8.00")),
                  Closure("VOID", "void", noon(date(2026, 3, 2)), D("900.00"))],
        credit_notes=[CreditNote("CN-1", "C-1", "EUR", D("20.00"), date(2026, 3, 5), (Allocation("CREDITED", D("20.00")),))],
    )  # fmt: skip
    aging = {b: (x.amount, x.count) for b, x in ref.aging(AS_OF, "EUR").items()}
    assert aging == {
        "current": (D("110.00"), 2),
        "1-30": (D("60.00") + D("30.00") + D("7.00") + D("8.00") + D("5.00"), 5),
        "31-60": (D("31.00"), 1),
        "61-90": (D("89.00") + D("90.00"), 2),
        "91+": (D("91.00"), 1),
    }
    assert ref.aging(AS_OF, "USD") == {b: type(x)(D(0), 0) for b, x in ref.aging(AS_OF, "USD").items()}
    # A void invoice is no sale, whenever it was voided (VOID-LATER neither); it left AR on its void date.
    assert ref.sales(*MARCH, "EUR") == D("100.00") + 10 + 100 + 7 + 20
    assert ref.ar(date(2026, 3, 1), "EUR") - ref.ar(date(2026, 3, 2), "EUR") == D("900.00")


def test_aging_by_segment_keeps_the_customers_of_that_segment() -> None:
    ref = book([inv("E", "1.00", date(2026, 3, 1), None), inv("S", "2.00", date(2026, 3, 1), None, customer="C-2")])
    assert ref.aging(AS_OF, "EUR", "smb")["1-30"].amount == D("2.00")
    assert ref.aging(AS_OF, "EUR", "enterprise")["1-30"].amount == D("1.00")
    assert ref.aging(AS_OF, "EUR", "public_sector")["1-30"].count == 0


def test_collection_counts_money_dated_in_the_period_on_invoices_due_in_it() -> None:
    ref = book(
        [
            inv("DUE-MAR", "100.00", date(2026, 2, 1), date(2026, 3, 3)),
            inv("DUE-MAR-2", "50.00", date(2026, 2, 1), date(2026, 3, 31)),
            inv("DUE-FEB", "70.00", date(2026, 1, 1), date(2026, 2, 28)),
            inv("DUE-MAR-VOID", "999.00", date(2026, 2, 1), date(2026, 3, 10)),
            inv("BAD-DEBT", "40.00", date(2025, 6, 1), date(2025, 7, 1)),
            inv("DISPUTED", "25.00", date(2026, 2, 1), date(2026, 4, 15)),
            inv("DISPUTE-ENDED", "35.00", date(2026, 2, 1), date(2026, 4, 15)),
            inv("DISPUTED-LAST-DAY", "45.00", date(2026, 2, 1), date(2026, 4, 15)),
            inv("RESOLVED-LAST-DAY", "55.00", date(2026, 2, 1), date(2026, 4, 15)),
        ],
        [
            pay("P-1", date(2026, 2, 20), ("DUE-MAR", "30.00")),  # before the period: not collected in it
            pay("P-2", date(2026, 3, 5), ("DUE-MAR", "70.00"), ("DUE-FEB", "70.00")),  # DUE-FEB: not due in March
            pay("P-3", date(2026, 3, 6), ("DUE-MAR-2", "50.00")),
            pay("P-4", date(2026, 3, 1), ("BAD-DEBT", "15.00")),
        ],
        reversals=[Reversal("P-3", noon(date(2026, 3, 20)))],  # 50 collected, 50 given back
        credit_notes=[CreditNote("CN", "C-1", "EUR", D("10.00"), date(2026, 3, 25), (Allocation("DUE-MAR-2", D("10.00")),))],
        closures=[Closure("DUE-MAR-VOID", "void", noon(date(2026, 2, 5)), D("999.00")),
                  Closure("BAD-DEBT", "written_off", noon(date(2026, 3, 12)), D("25.00"))],
        disputes=[Dispute("DISPUTED", noon(date(2026, 2, 10)), None),
                  Dispute("DISPUTE-ENDED", noon(date(2026, 3, 2)), noon(date(2026, 3, 9))),
                  Dispute("DISPUTED-LAST-DAY", noon(date(2026, 3, 31)), noon(date(2026, 4, 1))),
                  Dispute("RESOLVED-LAST-DAY", noon(date(2026, 2, 2)), noon(date(2026, 3, 31)))],
    )  # fmt: skip
    c = ref.collection(*MARCH, "EUR")
    assert c.collected == D("70.00") + D("50.00") - D("50.00") + D("10.00")
    assert c.due == D("150.00")  # DUE-MAR + DUE-MAR-2; the void one was never a sale
    assert c.collection_rate == D("80.00") / D("150.00")
    assert c.written_off == D("25.00")  # 40 - 15 paid before the write-off
    assert c.disputed == D("25.00") + D("45.00")
    # Overdue at 31 March: DUE-MAR-2 (due 31 Mar) is current; nothing else overdue is left.
    assert c.overdue == ref.ar(date(2026, 3, 31), "EUR") - ref.current_ar(date(2026, 3, 31), "EUR") == 0
    assert ref.collection(date(2026, 4, 1), date(2026, 4, 30), "EUR").collection_rate is not None
    assert ref.collection(date(2027, 1, 1), date(2027, 1, 31), "EUR").collection_rate is None


def test_a_write_off_cancels_the_balance_just_before_it() -> None:
    ref = book(
        [inv("W", "100.00", date(2026, 1, 1), date(2026, 1, 31))],
        [pay("P", date(2026, 3, 12), ("W", "30.00"))],  # the same day as the write-off: before it
        closures=[Closure("W", "written_off", noon(date(2026, 3, 12)), D("70.00"))],
    )
    assert [(c.kind, c.on, c.amount) for c in ref.changes["W"]][-1] == ("write_off", date(2026, 3, 12), D("-70.00"))
    assert ref.balance("W", date(2026, 3, 11)) == D("100.00") and ref.balance("W", date(2026, 3, 12)) == 0


def _promise(key: str, created: date, outcome: str, amount: str, received: str, customer: str = "C-1",
             plan: str | None = None) -> Promise:  # fmt: skip
    return Promise(key, customer, ("X",), "EUR", D(amount), noon(created), created, outcome, D(received), plan)  # type: ignore[arg-type]


def test_promise_figures_count_what_was_recorded_in_the_period() -> None:
    march = date(2026, 3, 5)
    instalments = (_promise("PL-1", march, "kept", "40.00", "40.00", plan="PL"),
                   _promise("PL-2", march, "broken", "30.00", "0", plan="PL"),
                   _promise("PL-3", march, "cancelled", "30.00", "0", plan="PL"))  # fmt: skip
    ref = book(
        [inv("X", "1000.00", date(2026, 1, 1), date(2026, 1, 31))],
        promises=[_promise("K", march, "kept", "100.00", "100.00"), _promise("P", march, "partially_kept", "80.00", "20.00"),
                  _promise("B", march, "broken", "60.00", "0"), _promise("O", march, "open", "10.00", "0"),
                  _promise("S", march, "kept", "5.00", "5.00", customer="C-2"),
                  _promise("FEB", date(2026, 2, 27), "kept", "1.00", "1.00")],
        plans=[Plan("PL", "C-1", ("X",), "EUR", D("100.00"), march, noon(march), "defaulted", instalments)],
    )  # fmt: skip
    p = ref.promises(*MARCH, "EUR")  # the plan's instalments count in the plan columns only
    assert (p.made, p.kept, p.broken, p.partially_kept, p.cancelled, p.open) == (5, 2, 2, 1, 0, 1)
    assert p.kept_rate == D(2) / D(4)
    assert p.amount_promised == D("255.00")
    assert p.amount_received == D("100.00") + D("20.00") + D("5.00")
    assert (p.plans_created, p.plans_completed, p.plans_defaulted, p.plans_active, p.plans_amount) == (
        1,
        0,
        1,
        0,
        D(100),
    )
    smb = ref.promises(*MARCH, "EUR", "smb")
    assert (smb.made, smb.kept, smb.plans_created) == (1, 1, 0)
    every = ref.promises(*MARCH, "EUR", with_instalments=True)
    assert (every.made, every.kept, every.broken, every.cancelled, every.kept_rate) == (8, 3, 3, 1, D(3) / D(6))
    assert every.amount_received == p.amount_received + D("40.00")
    assert ref.promises(*MARCH, "USD").kept_rate is None


def test_series_intervals_are_clipped_weeks_and_months() -> None:
    assert intervals(date(2026, 3, 4), date(2026, 3, 17), "week") == [
        (date(2026, 3, 4), date(2026, 3, 8)), (date(2026, 3, 9), date(2026, 3, 15)), (date(2026, 3, 16), date(2026, 3, 17))
    ]  # fmt: skip
    assert intervals(date(2026, 1, 15), date(2026, 3, 2), "month") == [
        (date(2026, 1, 15), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 28)), (date(2026, 3, 1), date(2026, 3, 2))
    ]  # fmt: skip
    assert len(intervals(date(2026, 3, 1), date(2026, 3, 31), "day")) == 31
    windows = list(month_windows(date(2026, 3, 10)))
    assert windows[:3] == [(date(2026, 3, 1), date(2026, 3, 10)), (date(2026, 2, 1), date(2026, 2, 28)),
                           (date(2026, 1, 1), date(2026, 1, 31))]  # fmt: skip
    assert len(windows) == 36 and windows[-1] == (date(2023, 4, 1), date(2023, 4, 30))


# ---------------------------------------------------------------------------------------------- the synthetic ledger


@pytest.fixture(scope="module")
def synthetic() -> SyntheticLedger:
    return generate(15)


def test_a_seed_is_a_ledger() -> None:
    one, again = generate(15, invoices=2_000, customers=50), generate(15, invoices=2_000, customers=50)
    assert (again.invoices, again.payments, again.closures, again.disputes, again.promises, again.plans) == (
        one.invoices, one.payments, one.closures, one.disputes, one.promises, one.plans
    )  # fmt: skip
    assert generate(16, invoices=2_000, customers=50).invoices != one.invoices


def test_the_synthetic_ledger_has_every_kind_of_fact_the_issue_asks_for(synthetic: SyntheticLedger) -> None:
    ledger = synthetic
    assert len(ledger.invoices) >= 20_000
    issued = [i.issue_date for i in ledger.invoices]
    assert (max(issued) - min(issued)).days >= 540  # 18 months
    assert {i.currency for i in ledger.invoices} == {"EUR", "USD", "GBP", "JPY"}
    assert len({c.segment for c in ledger.customers}) >= 4
    paid_in_parts = {a.invoice_id for p in ledger.payments for a in p.allocations}
    assert sum(len(p.allocations) > 1 for p in ledger.payments) > 100, "payment runs over several invoices"
    assert len(paid_in_parts) < sum(len(p.allocations) for p in ledger.payments), "invoices paid in parts"
    assert any(p.amount > sum(a.amount for a in p.allocations) for p in ledger.payments), "over-payments"
    assert ledger.credit_notes and ledger.reversals
    assert {c.status for c in ledger.closures} == {"void", "written_off"}
    assert any(d.resolved_at for d in ledger.disputes) and any(d.resolved_at is None for d in ledger.disputes)
    outcomes = {p.outcome for p in ledger.all_promises()}
    assert {"kept", "broken", "partially_kept"} <= outcomes
    assert {p.outcome for p in ledger.plans} == {"completed", "defaulted"}
    assert any(i.due_date is None for i in ledger.invoices)
    assert any(b != 0 for b in ledger.balances().values()), "some invoices are still owed at the end"


def test_the_feed_plan_is_one_the_services_accept_in_its_order(synthetic: SyntheticLedger) -> None:
    plan = plan_feed(synthetic)
    assert replay(synthetic, plan) == synthetic.balances()
    assert [s.at for s in plan.stops] == sorted(s.at for s in plan.stops) and plan.start < plan.stops[0].at
    # The reference's own "balance just before" of each close is what the generator says it cancels.
    ref = ReferenceBook(synthetic)
    for closure in synthetic.closures:
        cancelled = [c for c in ref.changes[closure.invoice_id] if c.kind in ("void", "write_off")]
        assert [-c.amount for c in cancelled] == [closure.amount]


def test_replay_refuses_a_feed_the_ledger_would_refuse(synthetic: SyntheticLedger) -> None:
    plan = plan_feed(synthetic)
    reversed_stop = next(s for s in plan.stops if s.reversals)
    reversed_stop.reversals.append(reversed_stop.reversals[0])  # the same payment reversed twice
    with pytest.raises(FeedRefused, match="twice"):
        replay(synthetic, plan)
