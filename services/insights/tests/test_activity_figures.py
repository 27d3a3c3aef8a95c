"""The activity figures (promises, steps, contacts) on hand-checked cases: the read-model tables are seeded
directly (one database for the module, one tenant per test) and every number is worked out in the comments."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dunning_kit.db import make_engine, make_sessions
from dunning_kit.problems import InvalidInput
from dunning_kit.testing import PostgresBackend
from insights.adapters import orm
from insights.domain.activity import Tally, converted, median_days, paid_within, share
from insights.domain.periods import intervals
from insights.domain.report import Cell, FigureTable, FxRateUsed
from insights.service_layer import activity_figures
from insights.service_layer.activity_figures import (
    ActivityQuery,
    contact_figures,
    promise_figures,
    step_figures,
    step_row,
)

D = date(2026, 3, 2)  # a Monday: the day the steps go out
NOON = time(12, 0)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), UTC)


@pytest_asyncio.fixture(scope="module")
async def engine(pg_backend: PostgresBackend) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(pg_backend.fresh_database(), orm.SCHEMA, pool_size=2)
    try:
        yield eng
    finally:
        await eng.dispose()


class Ledger:
    """Rows of one tenant, written straight into the read model (as the appliers would leave them)."""

    def __init__(self, engine: AsyncEngine, tenant: str) -> None:
        self.engine, self.tenant = engine, tenant
        self.rows: list[tuple[Any, dict[str, Any]]] = []

    def add(self, table: Any, **row: Any) -> None:
        self.rows.append((table, {"tenant_id": self.tenant, **row}))

    def customer(self, customer_id: str, segment: str | None = None) -> None:
        self.add(orm.customers, customer_id=customer_id, name=customer_id, segment=segment, currency="EUR")

    def invoice(self, invoice_id: str, customer_id: str, total: str, *, currency: str = "EUR",
                settled_on: date | None = None) -> None:  # fmt: skip
        self.add(orm.invoices, invoice_id=invoice_id, customer_id=customer_id, number=invoice_id, currency=currency,
                 total=Decimal(total), balance=Decimal(0) if settled_on else Decimal(total), issue_date=D - timedelta(40),
                 due_date=D - timedelta(10), status="paid" if settled_on else "open", settled_on=settled_on)  # fmt: skip

    def change(self, invoice_id: str, key: str, on_date: date, amount: str) -> None:
        self.add(orm.invoice_changes, invoice_id=invoice_id, change_key=key, kind=key.split(":")[0], on_date=on_date,
                 amount=Decimal(amount))  # fmt: skip

    def step(self, step_id: str, customer_id: str, sent_on: date, invoices: dict[str, str], *, name: str = "reminder",
             index: int = 0, currency: str = "EUR") -> None:  # fmt: skip
        self.add(orm.steps, step_id=step_id, customer_id=customer_id, policy_id="standard", policy_version=1,
                 step_index=index, step_name=name, tone="friendly", currency=currency,
                 amount_due=sum(Decimal(b) for b in invoices.values()), channels=["email"], due_at=at(sent_on, 9),
                 sent_on=sent_on)  # fmt: skip
        for invoice_id, balance in invoices.items():
            self.add(orm.step_invoices, step_id=step_id, invoice_id=invoice_id, balance=Decimal(balance))

    def delivery(self, delivery_id: str, step_id: str, customer_id: str, channel: str, **outcomes: datetime) -> None:
        self.add(orm.deliveries, delivery_id=delivery_id, step_id=step_id, customer_id=customer_id, channel=channel,
                 **outcomes)  # fmt: skip

    def promise(self, promise_id: str, customer_id: str, amount: str, status: str, *, created: date = D,
                received: str | None = None, partially_kept: bool = False, currency: str = "EUR",
                plan_id: str | None = None) -> None:  # fmt: skip
        self.add(orm.promises, promise_id=promise_id, customer_id=customer_id, plan_id=plan_id, invoice_ids=["I"],
                 currency=currency, amount=Decimal(amount), received=None if received is None else Decimal(received),
                 promised_date=created + timedelta(7), recorded_by="collector", created_at=at(created),
                 status=status, partially_kept=partially_kept)  # fmt: skip

    def plan(self, plan_id: str, customer_id: str, total: str, status: str, *, created: date = D) -> None:
        self.add(orm.plans, plan_id=plan_id, customer_id=customer_id, invoice_ids=["I"], currency="EUR",
                 total=Decimal(total), instalments=3, created_at=at(created), status=status)  # fmt: skip

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            async with self.engine.begin() as conn:
                for table, row in self.rows:
                    await conn.execute(insert(table), [row])


async def figure(engine: AsyncEngine, fn: Any, tenant: str, **query: Any) -> FigureTable:
    query = {"period_from": D - timedelta(days=7), "period_to": D + timedelta(days=20), **query}
    session: AsyncSession
    async with make_sessions(engine)() as session:
        table: FigureTable = await fn(session, ActivityQuery(tenant_id=tenant, **query))
    return table


def only(table: FigureTable) -> dict[str, Cell]:
    assert len(table.rows) == 1, table.rows
    return table.rows[0]


# ---------------------------------------------------------------- steps


async def test_paid_shares_count_what_came_in_within_n_days_of_the_step_up_to_the_balance_it_asked(
    engine: AsyncEngine,
) -> None:
    async with Ledger(engine, "t-shares") as t:
        t.customer("C")
        t.invoice("A", "C", "100.00")  # 60 paid on D+2, the rest never
        t.invoice("B", "C", "50.00", settled_on=D + timedelta(10))  # paid in full on D+10
        t.step("S", "C", D, {"A": "100.00", "B": "50.00"})
        t.change("A", "payment:p0", D - timedelta(1), "-5.00")  # before the step: not its effect
        t.change("A", "payment:p1", D + timedelta(2), "-60.00")
        t.change("B", "payment:p2", D + timedelta(10), "-50.00")
        t.change("B", "issue", D - timedelta(40), "50.00")  # not a payment
    row = only(await figure(engine, step_figures, "t-shares"))
    assert row == {
        "policy_id": "standard", "step_name": "reminder", "currency": "EUR", "steps": 1,
        "sent": 0, "delivered": 0, "bounced": 0, "failed": 0, "opted_out": 0,
        "invoices": 2, "amount": "150.00",
        "paid_3d_amount_share": "0.4000",  # 60 / 150
        "paid_7d_amount_share": "0.4000",  # 60 / 150
        "paid_14d_amount_share": "0.7333",  # (60 + 50) / 150 = 0.73333...
        "paid_3d_invoice_share": "0.0000",  # neither settled by D+3
        "paid_7d_invoice_share": "0.0000",
        "paid_14d_invoice_share": "0.5000",  # B settled on D+10
        "median_days_to_pay": "10.00",  # only B: 10 days
    }  # fmt: skip


async def test_an_overpayment_counts_up_to_the_balance_and_a_reversal_takes_it_back(engine: AsyncEngine) -> None:
    async with Ledger(engine, "t-cap") as t:
        t.customer("C")
        t.invoice("A", "C", "80.00")
        t.step("S", "C", D, {"A": "80.00"})
        t.change("A", "payment:p1", D + timedelta(1), "-100.00")  # within 3 days: min(80, 100) = 80
        t.change("A", "reversal:p1", D + timedelta(5), "100.00")  # within 7: back to 0 ...
        t.change("A", "credit:c1", D + timedelta(6), "-30.00")  # ... then 30 credited: min(80, 30) = 30
        t.change("A", "payment:p3", D + timedelta(15), "-50.00")  # after 14 days: not counted
    row = only(await figure(engine, step_figures, "t-cap"))
    assert (row["paid_3d_amount_share"], row["paid_7d_amount_share"], row["paid_14d_amount_share"]) == (
        "1.0000",  # 80 / 80
        "0.3750",  # 30 / 80
        "0.3750",
    )
    assert row["median_days_to_pay"] is None  # nothing settled


async def test_median_days_to_pay_is_over_the_invoices_settled_on_or_after_the_step(engine: AsyncEngine) -> None:
    async with Ledger(engine, "t-median") as t:
        t.customer("C")
        settled = {"A": 1, "B": 2, "C": 4, "E": 9, "F": -3}  # F was settled before the step went out
        for invoice_id, after in settled.items():
            t.invoice(invoice_id, "C", "10.00", settled_on=D + timedelta(after))
        t.invoice("G", "C", "10.00")  # still open
        t.step("S", "C", D, {i: "10.00" for i in [*settled, "G"]})
    row = only(await figure(engine, step_figures, "t-median"))
    assert row["median_days_to_pay"] == "3.00"  # median of 1, 2, 4, 9 = (2 + 4) / 2
    assert (row["paid_3d_invoice_share"], row["paid_7d_invoice_share"], row["paid_14d_invoice_share"]) == (
        "0.3333",  # A, B of 6
        "0.5000",  # A, B, C of 6
        "0.6667",  # A, B, C, E of 6
    )


async def test_an_opt_out_counts_for_the_latest_delivery_on_its_channel_sent_at_or_before_it(
    engine: AsyncEngine,
) -> None:
    async with Ledger(engine, "t-opt") as t:
        t.customer("K")
        t.invoice("A", "K", "100.00")
        t.step("S1", "K", D, {"A": "100.00"}, name="first", index=0)
        t.step("S2", "K", D + timedelta(4), {"A": "100.00"}, name="second", index=1)
        t.delivery("d1", "S1", "K", "email", sent_at=at(D, 9), delivered_at=at(D, 10))
        t.delivery("d2", "S2", "K", "email", sent_at=at(D + timedelta(4), 9), bounced_at=at(D + timedelta(4), 10))
        t.delivery("d3", "S2", "K", "sms", failed_at=at(D + timedelta(4), 9))  # never sent
        for day, channel in ((D + timedelta(2), "email"), (D + timedelta(5), "email"), (D + timedelta(5), "sms")):
            t.add(orm.consent_revocations, customer_id="K", channel=channel, revoked_at=at(day), reason="unsubscribe")
    by_step = {r["step_name"]: r for r in (await figure(engine, step_figures, "t-opt", group_by=["step"])).rows}
    counts = ("steps", "sent", "delivered", "bounced", "failed", "opted_out")
    assert {name: tuple(r[c] for c in counts) for name, r in by_step.items()} == {
        "first": (1, 1, 1, 0, 0, 1),  # the opt-out of D+2 follows d1 (sent on D)
        "second": (1, 1, 0, 1, 1, 1),  # that of D+5 follows d2 (D+4); the sms one finds no sms sent
    }
    by_channel = {r["channel"]: r for r in (await figure(engine, step_figures, "t-opt", group_by=["channel"])).rows}
    assert {ch: tuple(r[c] for c in counts) for ch, r in by_channel.items()} == {
        "email": (2, 2, 1, 1, 0, 2),
        "sms": (0, 0, 0, 0, 1, 0),  # a channel's steps are those with a delivery sent on it: none
    }
    assert by_channel["email"]["amount"] == "200.00" and by_channel["sms"]["amount"] == "0.00"
    both = await figure(engine, step_figures, "t-opt", group_by=["step", "channel"])
    assert [(r["step_name"], r["channel"], r["steps"]) for r in both.rows] == [
        ("first", "email", 1), ("second", "email", 1), ("second", "sms", 0),
    ]  # fmt: skip


async def test_steps_are_per_currency_and_filtered_by_segment_customer_and_currency(engine: AsyncEngine) -> None:
    async with Ledger(engine, "t-cur") as t:
        t.customer("C1", segment="enterprise")
        t.customer("C2", segment="smb")
        t.invoice("A", "C1", "100.00")
        t.invoice("B", "C2", "70.00", currency="USD")
        t.step("S1", "C1", D, {"A": "100.00"})
        t.step("S2", "C2", D, {"B": "70.00"}, currency="USD")
    rows = (await figure(engine, step_figures, "t-cur")).rows
    assert [(r["currency"], r["amount"]) for r in rows] == [("EUR", "100.00"), ("USD", "70.00")]  # never summed
    assert only(await figure(engine, step_figures, "t-cur", segment="smb"))["currency"] == "USD"
    assert only(await figure(engine, step_figures, "t-cur", customer_id="C1"))["currency"] == "EUR"
    assert only(await figure(engine, step_figures, "t-cur", currency="USD"))["amount"] == "70.00"
    with pytest.raises(InvalidInput) as unknown:
        await figure(engine, step_figures, "t-cur", segment="government", customer_id="C9")
    assert [e.field for e in unknown.value.errors] == ["query.segment", "query.customer_id"]
    with pytest.raises(InvalidInput) as convert:
        await figure(engine, step_figures, "t-cur", convert=True)
    assert [e.field for e in convert.value.errors] == ["query.convert"]


async def test_a_converted_figure_adds_money_at_each_rate_and_lists_the_rates(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Ledger(engine, "t-convert") as t:
        t.customer("C")
        t.invoice("A", "C", "100.00", settled_on=D + timedelta(2))
        t.invoice("B", "C", "80.00", currency="USD")
        t.step("S1", "C", D, {"A": "100.00"})
        t.step("S2", "C", D, {"B": "80.00"}, currency="USD")
        t.change("A", "payment:p1", D + timedelta(2), "-100.00")
    usd = FxRateUsed("USD", "EUR", D - timedelta(1), Decimal("0.9"))

    async def rates(session: AsyncSession, q: ActivityQuery, currencies: set[str]) -> tuple[str, list[FxRateUsed]]:
        assert currencies == {"EUR", "USD"} and q.period_to == D + timedelta(20)
        return "EUR", [usd]

    monkeypatch.setattr(activity_figures, "conversion_rates", rates)
    table = await figure(engine, step_figures, "t-convert", convert=True)
    row = only(table)
    assert (table.reporting_currency, table.fx_rates_used) == ("EUR", [usd])
    assert (row["currency"], row["steps"], row["invoices"], row["amount"]) == ("EUR", 2, 2, "172.00")  # 100 + 80 × 0.9
    assert row["paid_3d_amount_share"] == "0.5814"  # 100 / 172, not the mean of 1 and 0
    assert (row["paid_3d_invoice_share"], row["median_days_to_pay"]) == ("0.5000", "2.00")


async def test_a_weekly_series_has_every_week_of_the_period_clipped_to_it(engine: AsyncEngine) -> None:
    async with Ledger(engine, "t-week") as t:
        t.customer("C")
        t.invoice("A", "C", "10.00")
        t.step("S1", "C", D - timedelta(1), {"A": "10.00"})  # Sunday 1 March: the first (clipped) week
        t.step("S2", "C", D, {"A": "10.00"})  # Monday 2 March
        t.step("S3", "C", D + timedelta(6), {"A": "10.00"})  # Sunday 8 March
    table = await figure(engine, step_figures, "t-week", period_from=date(2026, 2, 27), period_to=date(2026, 3, 10),
                         interval="week")  # fmt: skip
    assert [(r["period_start"], r["period_end"], r["steps"], r["amount"]) for r in table.rows] == [
        ("2026-02-27", "2026-03-01", 1, "10.00"),
        ("2026-03-02", "2026-03-08", 2, "20.00"),
        ("2026-03-09", "2026-03-10", 0, "0.00"),
    ]
    assert table.columns[:2] == ["period_start", "period_end"] and table.note is None


async def test_a_period_without_steps_is_empty_with_a_note(engine: AsyncEngine) -> None:
    table = await figure(engine, step_figures, "t-nothing")
    assert table.rows == [] and table.note is not None and "no dunning step" in table.note


# ---------------------------------------------------------------- promises and plans


async def test_promise_outcomes_kept_rate_and_amounts_of_the_promises_made_in_the_period(engine: AsyncEngine) -> None:
    async with Ledger(engine, "t-promises") as t:
        t.customer("C1", segment="enterprise")
        t.customer("C2", segment="smb")
        t.promise("p1", "C1", "100.00", "kept", received="100.00")
        t.promise("p2", "C1", "100.00", "broken", received="40.00", partially_kept=True)
        t.promise("p3", "C2", "50.00", "broken", received="0.00")
        t.promise("p4", "C2", "30.00", "cancelled")
        t.promise("p5", "C2", "20.00", "open")
        t.promise("p6", "C2", "25.00", "kept", received="25.00", plan_id="plan-1")  # an instalment: in plans
        t.promise("p7", "C2", "99.00", "kept", received="99.00", created=D - timedelta(30))  # before the period
        t.promise("p8", "C2", "10.00", "kept", received="10.00", currency="USD")
        t.plan("plan-1", "C2", "75.00", "completed")
        t.plan("plan-2", "C1", "60.00", "defaulted")
        t.plan("plan-3", "C1", "90.00", "active")
    eur, usd = (await figure(engine, promise_figures, "t-promises")).rows
    assert eur == {
        "currency": "EUR", "made": 5, "kept": 1, "broken": 2, "partially_kept": 1, "cancelled": 1, "open": 1,
        "kept_rate": "0.3333",  # 1 / (1 + 2)
        "amount_promised": "300.00",  # 100 + 100 + 50 + 30 + 20
        "amount_received": "140.00",  # 100 + 40 + 0 (kept and broken)
        "plans_created": 3, "plans_completed": 1, "plans_defaulted": 1, "plans_active": 1, "plans_amount": "225.00",
    }  # fmt: skip
    assert (usd["currency"], usd["made"], usd["kept_rate"], usd["plans_created"]) == ("USD", 1, "1.0000", 0)
    by_segment = await figure(engine, promise_figures, "t-promises", group_by=["segment"], currency="EUR")
    assert [(r["segment"], r["made"], r["kept_rate"], r["plans_created"]) for r in by_segment.rows] == [
        ("enterprise", 2, "0.5000", 2),
        ("smb", 3, "0.0000", 1),  # p3 broken, p4 cancelled, p5 open: kept 0 of 1 judged
    ]
    one = only(await figure(engine, promise_figures, "t-promises", group_by=["customer"], customer_id="C2",
                            currency="EUR"))  # fmt: skip
    assert (one["customer_id"], one["made"], one["open"], one["kept_rate"]) == ("C2", 3, 1, "0.0000")


async def test_the_kept_rate_is_null_when_no_promise_was_judged(engine: AsyncEngine) -> None:
    async with Ledger(engine, "t-open") as t:
        t.customer("C")
        t.promise("p1", "C", "20.00", "open")
    row = only(await figure(engine, promise_figures, "t-open"))
    assert (row["made"], row["kept_rate"], row["amount_received"]) == (1, None, "0.00")


# ---------------------------------------------------------------- contacts


async def test_contacts_per_day_and_channel_split_the_holds_by_rule(engine: AsyncEngine) -> None:
    async with Ledger(engine, "t-contacts") as t:
        t.customer("C")
        t.step("S", "C", D, {})
        for n, (day, channel) in enumerate([(D, "email"), (D, "email"), (D, "sms"), (D + timedelta(1), "email")]):
            t.delivery(f"d{n}", "S", "C", channel, sent_at=at(day, 23))  # 23:00 UTC is still that day
        t.delivery("unsent", "S", "C", "email", failed_at=at(D))
        for n, (day, channel, rule) in enumerate(
            [
                (D, "email", "contact_cap"),
                (D, "email", "consent"),
                (D + timedelta(1), "sms", "quiet_hours"),
                (D, "sms", "other"),
            ]
        ):
            t.add(orm.contact_holds, hold_key=f"h{n}", channel=channel, customer_id="C", held_on=day, rule=rule)
    table = await figure(engine, contact_figures, "t-contacts", period_from=D, period_to=D + timedelta(2))
    cells = ("period_start", "channel", "sent", "held", "held_contact_cap", "held_consent", "held_quiet_hours",
             "held_other")  # fmt: skip
    assert [tuple(r[c] for c in cells) for r in table.rows] == [
        ("2026-03-02", "email", 2, 2, 1, 1, 0, 0),
        ("2026-03-02", "sms", 1, 1, 0, 0, 0, 1),
        ("2026-03-03", "email", 1, 0, 0, 0, 0, 0),
        ("2026-03-03", "sms", 0, 1, 0, 0, 1, 0),
        ("2026-03-04", "email", 0, 0, 0, 0, 0, 0),  # every day of the period, for every channel seen
        ("2026-03-04", "sms", 0, 0, 0, 0, 0, 0),
    ]
    with pytest.raises(InvalidInput) as per_currency:
        await figure(engine, contact_figures, "t-contacts", currency="EUR")
    assert [e.field for e in per_currency.value.errors] == ["query.currency"]


# ---------------------------------------------------------------- the arithmetic


def test_shares_round_half_even_to_four_places_and_are_null_without_a_whole() -> None:
    assert share(Decimal("60"), Decimal("150")) == "0.4000"
    assert share(1, 20000) == "0.0000"  # 0.00005: half to even
    assert share(3, 20000) == "0.0002"  # 0.00015: half to even
    assert share(2, 3) == "0.6667"
    assert share(0, 0) is None


def test_median_days_takes_the_middle_or_the_mean_of_the_two_middles() -> None:
    assert median_days(Counter({1: 1, 2: 1, 4: 1, 9: 1})) == Decimal(3)
    assert median_days(Counter({0: 2, 5: 1})) == Decimal(0)
    assert median_days(Counter({3: 1, 4: 1})) == Decimal("3.5")
    assert median_days(Counter()) is None


def test_intervals_cover_the_period_with_calendar_weeks_and_months_clipped_to_it() -> None:
    assert intervals(date(2026, 1, 30), date(2026, 3, 3), "month") == [
        (date(2026, 1, 30), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 3)),
    ]  # fmt: skip
    assert len(intervals(date(2026, 1, 1), date(2026, 1, 31), "day")) == 31


def test_converted_tallies_add_money_at_each_rate_and_shares_follow_the_merged_sums() -> None:
    eur = Tally(Counter(invoices=1), {"amount": Decimal("100"), "paid_3d": Decimal("50")}, Counter({2: 1}))
    usd = Tally(Counter(invoices=3), {"amount": Decimal("10"), "paid_3d": Decimal("10")}, Counter({4: 2}))
    merged = converted({("S", "EUR"): eur, ("S", "USD"): usd}, {"EUR": Decimal(1), "USD": Decimal("0.9")}, "EUR")
    (key, tally), *_ = merged.items()
    assert key == ("S", "EUR") and len(merged) == 1
    assert (tally.counts["invoices"], tally.amount("amount"), tally.amount("paid_3d")) == (4, Decimal("109.0"),
                                                                                          Decimal("59.0"))  # fmt: skip
    assert share(tally.amount("paid_3d"), tally.amount("amount")) == "0.5413"  # 59 / 109, not (0.5 + 1) / 2
    assert median_days(tally.days_to_pay) == Decimal(4)


# ---------------------------------------------------------------- the SQL against the formulas, on random data


async def test_step_figures_match_the_readme_formulas_computed_in_python_on_a_random_ledger(
    engine: AsyncEngine,
) -> None:
    rng = random.Random(15)
    period = (D, D + timedelta(10))
    currency_of = {f"C{n}": ("EUR", "USD")[n % 2] for n in range(5)}
    changes: dict[str, list[tuple[str, date, Decimal]]] = {}
    settled: dict[str, date | None] = {}
    steps: list[tuple[str, str, str, date, dict[str, Decimal]]] = []
    deliveries: list[dict[str, Any]] = []
    revocations: list[tuple[str, str, datetime]] = []
    async with Ledger(engine, "t-random") as t:
        for customer, currency in currency_of.items():
            t.customer(customer)
            invoices = [f"{customer}-I{n}" for n in range(4)]
            for invoice_id in invoices:
                settled[invoice_id] = rng.choice([None, D + timedelta(rng.randint(-4, 25))])
                t.invoice(invoice_id, customer, "100.00", currency=currency, settled_on=settled[invoice_id])
                changes[invoice_id] = []
                for n in range(rng.randint(0, 4)):
                    kind = rng.choice(["payment", "payment", "credit", "reversal", "issue"])
                    amount = Decimal(rng.randint(1, 9000)) / 100 * (1 if kind in ("reversal", "issue") else -1)
                    on = D + timedelta(rng.randint(-3, 30))
                    changes[invoice_id].append((kind, on, amount))
                    t.change(invoice_id, f"{kind}:{n}", on, str(amount))
            for n in range(5):
                step_id, name = f"{customer}-S{n}", rng.choice(["first", "second", "final"])
                sent_on = D + timedelta(rng.randint(-2, 12))
                asked = {i: Decimal(rng.randint(1, 12000)) / 100 for i in rng.sample(invoices, rng.randint(1, 3))}
                steps.append((step_id, customer, name, sent_on, asked))
                t.step(step_id, customer, sent_on, {i: str(b) for i, b in asked.items()}, name=name, currency=currency)
                for channel in rng.sample(["email", "sms", "letter"], rng.randint(0, 2)):
                    when = at(sent_on, rng.randint(8, 20))
                    outcome = {
                        k: when for k in ("sent_at", "delivered_at", "bounced_at", "failed_at") if rng.random() < 0.5
                    }
                    deliveries.append({"delivery_id": f"{step_id}-{channel}", "step_id": step_id, "customer": customer,
                                       "channel": channel, **outcome})  # fmt: skip
                    t.delivery(f"{step_id}-{channel}", step_id, customer, channel, **outcome)
            for channel in ("email", "sms"):
                if rng.random() < 0.6:
                    revocations.append((customer, channel, at(D + timedelta(rng.randint(0, 14)), 7)))
                    t.add(orm.consent_revocations, customer_id=customer, channel=channel,
                          revoked_at=revocations[-1][2], reason="stop_reply")  # fmt: skip

    opted: set[str] = set()
    for customer, channel, revoked_at in revocations:
        before = [d for d in deliveries if (d["customer"], d["channel"]) == (customer, channel)
                  and d.get("sent_at") and d["sent_at"] <= revoked_at]  # fmt: skip
        if before:
            opted.add(max(before, key=lambda d: (d["sent_at"], d["delivery_id"]))["delivery_id"])

    def reference(by_channel: bool) -> dict[tuple[str, ...], dict[str, Any]]:
        rows: dict[tuple[str, ...], Tally] = {}
        in_period = [s for s in steps if period[0] <= s[3] <= period[1]]
        for step_id, customer, name, sent_on, asked in in_period:
            mine = [d for d in deliveries if d["step_id"] == step_id]
            channels = [d["channel"] for d in mine if d.get("sent_at")] if by_channel else [None]
            for d in mine:
                tally = rows.setdefault((d["channel"] if by_channel else name, currency_of[customer]), Tally())
                for outcome in ("sent", "delivered", "bounced", "failed"):
                    tally.counts[outcome] += 1 if d.get(f"{outcome}_at") else 0
                tally.counts["opted_out"] += d["delivery_id"] in opted
            for channel in channels:
                tally = rows.setdefault((channel if by_channel else name, currency_of[customer]), Tally())
                tally.counts["steps"] += 1
                for invoice_id, balance in asked.items():
                    paid_on = settled[invoice_id]
                    tally.counts["invoices"] += 1
                    tally.money["amount"] = tally.amount("amount") + balance
                    for n in (3, 7, 14):
                        came_in = -sum((a for k, on, a in changes[invoice_id]
                                        if k in ("payment", "reversal", "credit") and sent_on <= on <= sent_on + timedelta(n)),
                                       Decimal(0))  # fmt: skip
                        tally.money[f"paid_{n}d"] = tally.amount(f"paid_{n}d") + paid_within(balance, came_in)
                        tally.counts[f"settled_{n}d"] += (
                            paid_on is not None and sent_on <= paid_on <= sent_on + timedelta(n)
                        )
                    if paid_on is not None and paid_on >= sent_on:
                        tally.days_to_pay[(paid_on - sent_on).days] += 1
        return {key: step_row(tally, key[-1]) for key, tally in rows.items()}

    query = {"period_from": period[0], "period_to": period[1]}
    by_step = await figure(engine, step_figures, "t-random", **query)
    assert {(r["step_name"], r["currency"]): values(r) for r in by_step.rows} == reference(False)
    by_channel = await figure(engine, step_figures, "t-random", group_by=["channel"], **query)
    assert {(r["channel"], r["currency"]): values(r) for r in by_channel.rows} == reference(True)
    assert len(by_step.rows) >= 4 and any(r["median_days_to_pay"] for r in by_step.rows)  # the data is not trivial


def values(row: dict[str, Cell]) -> dict[str, Cell]:
    return {c: v for c, v in row.items() if c not in ("policy_id", "step_name", "channel", "currency")}
