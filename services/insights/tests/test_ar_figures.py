"""The AR figures on ledgers seeded straight into the read model, checked against numbers worked by hand; the
tenant-level path (ar_daily / sales_daily) pinned to the invoice-level one on the same rows."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_kit.problems import InvalidInput
from insights.domain.formulas import aging_bucket
from insights.domain.periods import countback_windows, intervals
from insights.domain.report import FigureTable
from insights.service_layer import ar_figures as f
from insights.service_layer.ar_figures import FigureRequest, Scope

from .ar_ledger import Ledger, figures_db, seed

__all__ = ["figures_db"]

Sessions = async_sessionmaker[AsyncSession]
D = date(2026, 6, 30)


def rows(table: FigureTable, *columns: str) -> list[tuple[object, ...]]:
    return [tuple(r[c] for c in columns) for r in table.rows]


async def test_the_sql_buckets_are_the_domain_buckets(figures_db: Sessions) -> None:
    async with figures_db() as session:
        result = await session.execute(
            text(f"SELECT n, {f.bucket_sql('n')} AS bucket FROM generate_series(-3, 130) AS n")
        )
        assert {n: b for n, b in result.all()} == {n: aging_bucket(n) for n in range(-3, 131)}


def test_series_intervals_are_clipped_weeks_and_calendar_months() -> None:
    weeks = intervals(date(2026, 6, 3), date(2026, 6, 20), "week")  # a Wednesday to a Saturday
    assert weeks == [(date(2026, 6, 3), date(2026, 6, 7)), (date(2026, 6, 8), date(2026, 6, 14)),
                     (date(2026, 6, 15), date(2026, 6, 20))]  # fmt: skip
    months = intervals(date(2026, 1, 15), date(2026, 3, 10), "month")
    assert months == [(date(2026, 1, 15), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 28)),
                      (date(2026, 3, 1), date(2026, 3, 10))]  # fmt: skip
    assert len(intervals(date(2026, 1, 1), date(2026, 1, 3), "day")) == 3
    windows = countback_windows(date(2026, 3, 15))
    assert windows[:3] == [(date(2026, 3, 1), date(2026, 3, 15)), (date(2026, 2, 1), date(2026, 2, 28)),
                           (date(2026, 1, 1), date(2026, 1, 31))]  # fmt: skip
    assert len(windows) == 36 and windows[-1][0] == date(2023, 4, 1)


def aging_ledger(tenant: str) -> Ledger:
    ledger = Ledger(tenant)
    ledger.customer("C-1", "smb")
    ledger.customer("C-2", "enterprise")
    for invoice, days_past_due, total in [
        ("A", 0, "100"),
        ("B", 1, "200"),
        ("C", 30, "300"),
        ("D", 31, "400"),
        ("E", 60, "500"),
        ("F", 61, "600"),
        ("G", 90, "700"),
        ("H", 91, "800"),
    ]:
        due = D - timedelta(days=days_past_due)
        ledger.invoice(invoice, "C-1", total, due - timedelta(days=30), due)
    ledger.invoice("I", "C-2", "1000", D - timedelta(days=20), D + timedelta(days=10))
    ledger.change("I", "payment", D - timedelta(days=1), "250")  # 750 left, not due yet
    ledger.invoice("J", "C-2", "50", D - timedelta(days=35), D - timedelta(days=5))
    ledger.change("J", "payment", D - timedelta(days=2), "50")  # paid before D: not open
    ledger.invoice("K", "C-2", "70", D - timedelta(days=35), D - timedelta(days=5))
    ledger.change("K", "payment", D + timedelta(days=1), "70")  # paid after D: open as of D
    ledger.invoice("L", "C-1", "999", D + timedelta(days=1), D + timedelta(days=31))  # issued after D
    ledger.invoice("M", "C-1", "40", D - timedelta(days=40), D - timedelta(days=10), currency="USD")
    return ledger


EXPECTED_AGING = [
    ("EUR", "current", "850.00", 2), ("EUR", "1-30", "570.00", 3), ("EUR", "31-60", "900.00", 2),
    ("EUR", "61-90", "1300.00", 2), ("EUR", "91+", "800.00", 1),
    ("USD", "current", "0.00", 0), ("USD", "1-30", "40.00", 1), ("USD", "31-60", "0.00", 0),
    ("USD", "61-90", "0.00", 0), ("USD", "91+", "0.00", 0),
]  # fmt: skip


async def test_aging_buckets_open_invoices_as_of_a_date_on_both_paths(figures_db: Sessions) -> None:
    await seed(figures_db, aging_ledger("t-aging"))
    async with figures_db() as session:
        tenant = await f.aging(session, FigureRequest(Scope("t-aging"), [(D, D)], as_of=D))
        assert rows(tenant, "currency", "bucket", "amount", "count") == EXPECTED_AGING
        by_segment = await f.aging(session, FigureRequest(Scope("t-aging", groups=("segment",)), [(D, D)], as_of=D))
        smb = [r for r in by_segment.rows if r["segment"] == "smb"]
        assert rows(FigureTable("aging", [], smb), "currency", "bucket", "amount", "count") == [
            ("EUR", "current", "100.00", 1), ("EUR", "1-30", "500.00", 2), ("EUR", "31-60", "900.00", 2),
            ("EUR", "61-90", "1300.00", 2), ("EUR", "91+", "800.00", 1), *EXPECTED_AGING[5:],
        ]  # fmt: skip
        one = await f.aging(session, FigureRequest(Scope("t-aging", customer_id="C-2", currency="EUR"), [(D, D)],
                                                   as_of=D))  # fmt: skip
        assert rows(one, "bucket", "amount", "count") == [("current", "750.00", 1), ("1-30", "70.00", 1),
                                                          ("31-60", "0.00", 0), ("61-90", "0.00", 0),
                                                          ("91+", "0.00", 0)]  # fmt: skip


def dso_ledger(tenant: str) -> Ledger:
    """Sales 100,000 in 1-15 March, 90,000 in February, 120,000 in January, 50,000 in December; AR on 15 March
    250,000 of which 100,000 (March's invoice) not yet due."""
    ledger = Ledger(tenant)
    ledger.customer("C-1", "smb")
    ledger.invoice("MAR", "C-1", "100000", date(2026, 3, 10), date(2026, 4, 9))
    ledger.invoice("FEB", "C-1", "90000", date(2026, 2, 10), date(2026, 3, 12))
    ledger.invoice("JAN", "C-1", "120000", date(2026, 1, 10), date(2026, 2, 9))
    ledger.change("JAN", "payment", date(2026, 2, 20), "60000")
    ledger.invoice("DEC", "C-1", "50000", date(2025, 12, 10), date(2026, 1, 9))
    ledger.change("DEC", "payment", date(2026, 1, 15), "50000")
    return ledger


async def test_dso_standard_countback_best_possible_and_add_by_hand(figures_db: Sessions) -> None:
    await seed(figures_db, dso_ledger("t-dso"))
    period = (date(2026, 1, 1), date(2026, 3, 15))  # 74 days, sales 310,000
    async with figures_db() as session:
        for scope in (Scope("t-dso"), Scope("t-dso", segment="smb")):
            table = await f.dso(session, FigureRequest(scope, [period]))
            # standard 250,000 / 310,000 x 74 = 59.677; countback 15 + 28 + 60,000 / 120,000 x 31 = 58.5;
            # best possible 100,000 / 310,000 x 74 = 23.871; ADD = 150,000 / 310,000 x 74 = 35.806.
            assert rows(table, "currency", "ar", "credit_sales", "days", "dso_standard", "dso_countback",
                        "best_possible_dso", "add") == [
                ("EUR", "250000.00", "310000.00", 74, "59.68", "58.50", "23.87", "35.81")
            ], scope  # fmt: skip
            assert table.note is None


async def test_zero_sales_give_null_dso_with_a_note_and_an_empty_period_a_note(figures_db: Sessions) -> None:
    await seed(figures_db, dso_ledger("t-dso-zero"))
    async with figures_db() as session:
        quiet = await f.dso(session, FigureRequest(Scope("t-dso-zero"), [(date(2026, 3, 16), date(2026, 3, 31))]))
        assert rows(quiet, "ar", "credit_sales", "dso_standard", "best_possible_dso", "add") == [
            ("250000.00", "0.00", None, None, None)
        ]
        assert quiet.rows[0]["dso_countback"] == "74.50"  # 31 + 28 + 60,000 / 120,000 x 31
        assert quiet.note and "no credit sales" in quiet.note
        nothing = await f.collection(session, FigureRequest(Scope("t-nobody"), [(D, D)]))
        assert nothing.rows == [] and nothing.note and "nothing to show" in nothing.note


async def test_textbook_cei_on_seeded_invoices(figures_db: Sessions) -> None:
    # AR 200,000 at the start of April; April's sales 300,000; at its end AR 250,000 of which 150,000 not due.
    ledger = Ledger("t-cei")
    ledger.invoice("X", "C-1", "200000", date(2026, 3, 1), date(2026, 3, 31))
    ledger.change("X", "payment", date(2026, 4, 10), "200000")
    ledger.invoice("Y1", "C-1", "150000", date(2026, 4, 5), date(2026, 5, 5))
    ledger.invoice("Y2", "C-1", "150000", date(2026, 4, 2), date(2026, 4, 20))
    ledger.change("Y2", "payment", date(2026, 4, 25), "50000")
    await seed(figures_db, ledger)
    async with figures_db() as session:
        for scope in (Scope("t-cei"), Scope("t-cei", customer_id="C-1")):
            table = await f.cei(session, FigureRequest(scope, [(date(2026, 4, 1), date(2026, 4, 30))]))
            assert rows(table, "ar_begin", "credit_sales", "ar_end", "current_ar_end", "cei") == [
                ("200000.00", "300000.00", "250000.00", "150000.00", "71.43")
            ]


async def test_collection_counts_settlements_of_invoices_due_in_the_period(figures_db: Sessions) -> None:
    ledger = Ledger("t-coll")
    ledger.customer("C-1", "smb")
    ledger.invoice("P1", "C-1", "1000", date(2026, 4, 10), date(2026, 5, 10))
    ledger.change("P1", "payment", date(2026, 5, 12), "600", key="payment:p1")
    ledger.change("P1", "reversal", date(2026, 5, 20), "100", key="reversal:p1")
    ledger.change("P1", "credit", date(2026, 5, 25), "200")
    ledger.invoice("P2", "C-1", "500", date(2026, 4, 20), date(2026, 5, 20))
    ledger.change("P2", "payment", date(2026, 6, 2), "500")  # after the period
    ledger.invoice("P3", "C-1", "300", date(2026, 3, 20), date(2026, 4, 20))
    ledger.change("P3", "payment", date(2026, 5, 5), "300")  # due before the period: not its collection
    ledger.invoice("P4", "C-1", "400", date(2026, 4, 15), date(2026, 5, 15))
    ledger.change("P4", "void", date(2026, 5, 16), "400")  # void: never due
    ledger.invoice("P5", "C-1", "800", date(2026, 2, 1), date(2026, 3, 1))
    ledger.change("P5", "write_off", date(2026, 5, 31), "800")
    ledger.invoice("P6", "C-1", "250", date(2026, 4, 30), date(2026, 5, 30))
    ledger.dispute("P6", datetime(2026, 5, 29, 10, tzinfo=UTC))
    ledger.dispute("P2", datetime(2026, 5, 3, tzinfo=UTC), datetime(2026, 5, 31, 23, tzinfo=UTC))
    ledger.dispute("P1", datetime(2026, 6, 1, tzinfo=UTC))
    await seed(figures_db, ledger)
    async with figures_db() as session:
        for scope in (Scope("t-coll"), Scope("t-coll", groups=("segment",))):
            table = await f.collection(session, FigureRequest(scope, [(date(2026, 5, 1), date(2026, 5, 31))]))
            # collected 600 - 100 + 200 = 700 of 1,000 + 500 + 250 due; overdue P1 300 + P2 500 + P6 250.
            assert rows(table, "collected", "due", "collection_rate", "overdue", "written_off", "disputed") == [
                ("700.00", "1750.00", "0.4000", "1050.00", "800.00", "250.00")
            ], scope


async def test_a_series_takes_each_stock_at_its_intervals_end(figures_db: Sessions) -> None:
    await seed(figures_db, aging_ledger("t-series"))
    weeks = intervals(D - timedelta(days=16), D, "week")
    async with figures_db() as session:
        series = await f.aging(session, FigureRequest(Scope("t-series"), weeks, interval="week"))
        assert series.columns[:3] == ["from", "to", "currency"]
        last_week = [r for r in series.rows if r["to"] == D.isoformat()]
        assert rows(FigureTable("aging", [], last_week), "currency", "bucket", "amount", "count") == EXPECTED_AGING
        for _, b in weeks:
            single = await f.aging(session, FigureRequest(Scope("t-series"), [(b, b)], as_of=b))
            at_end = [r for r in series.rows if r["to"] == b.isoformat()]
            assert rows(FigureTable("", [], at_end), "currency", "bucket", "amount", "count") == rows(
                single, "currency", "bucket", "amount", "count"
            )
        months = await f.dso(session, FigureRequest(Scope("t-series"), intervals(date(2026, 4, 1), D, "month"),
                                                    interval="month"))  # fmt: skip
        assert [(r["from"], r["to"], r["days"]) for r in months.rows if r["currency"] == "EUR"] == [
            ("2026-04-01", "2026-04-30", 30), ("2026-05-01", "2026-05-31", 31), ("2026-06-01", "2026-06-30", 30)
        ]  # fmt: skip


async def test_an_unknown_segment_or_customer_is_refused_naming_the_field(figures_db: Sessions) -> None:
    await seed(figures_db, aging_ledger("t-scope"))
    async with figures_db() as session:
        await f.check_scope(session, Scope("t-scope", segment="smb", customer_id="C-2"))
        with pytest.raises(InvalidInput) as refused:
            await f.check_scope(session, Scope("t-scope", segment="retail", customer_id="C-404"))
        assert [e.field for e in refused.value.errors] == ["query.segment", "query.customer_id"]
        assert "no customer of this tenant has segment 'retail'" in refused.value.errors[0].reason


def random_ledger(tenant: str, rng: random.Random) -> Ledger:
    ledger = Ledger(tenant)
    ledger.customer("C-1", "smb")
    ledger.customer("C-2", "enterprise")
    ledger.customer("C-3", None)  # and C-4 has no customer row at all
    start = date(2026, 1, 1)
    for n in range(80):
        issued = start + timedelta(days=rng.randrange(150))
        total = Decimal(rng.randrange(100, 100_000)) / 100
        invoice = f"R{n}"
        ledger.invoice(invoice, f"C-{1 + n % 4}", str(total), issued, issued + timedelta(days=rng.choice([0, 14, 30])),
                       currency=rng.choice(["EUR", "USD"]))  # fmt: skip
        left, on = total, issued
        for m in range(rng.randrange(4)):
            on += timedelta(days=rng.randrange(1, 40))
            kind = rng.choice(["payment", "credit", "payment", "reversal", "write_off", "void"])
            if kind in ("void", "write_off"):
                ledger.change(invoice, kind, on, str(left))
                break
            amount = (left / 2).quantize(Decimal("0.01")) if m < 2 else left
            if kind == "reversal":
                ledger.change(invoice, kind, on, "10.00")
                left += Decimal("10.00")
            else:
                ledger.change(invoice, kind, on, str(amount))
                left -= amount
    return ledger


async def test_the_daily_tables_and_the_invoices_give_the_same_figures(figures_db: Sessions) -> None:
    await seed(figures_db, random_ledger("t-pin", random.Random(15)))
    scope = Scope("t-pin")
    dates = [date(2025, 12, 31) + timedelta(days=n) for n in range(0, 260, 7)]
    periods = [(a, a + timedelta(days=n)) for a in dates[:10] for n in (0, 6, 45)]
    async with figures_db() as session:
        fast_ar = await f.balances_from_daily(session, scope, dates)
        slow_ar = await f.balances_from_invoices(session, scope, dates)
        fast_aging = await f.aging_from_daily(session, scope, dates)
        slow_aging = await f.aging_from_invoices(session, scope, dates)
        fast_sales = await f.sales_from_daily(session, scope, periods)
        slow_sales = await f.sales_from_invoices(session, scope, periods)
        segments = await f.aging(session, FigureRequest(Scope("t-pin", groups=("segment",)), [(D, D)], as_of=D))
        tenant = await f.aging(session, FigureRequest(scope, [(D, D)], as_of=D))
    assert fast_ar == slow_ar and len(fast_ar[0]) > 40
    # ar_daily keeps the groups of invoices that are settled (amount 0, none open): the invoice path has no row.
    assert {k: v for k, v in fast_aging[1].items() if v} == slow_aging[1] and slow_aging[1]
    assert {k: v for k, v in fast_aging[0].items() if k in slow_aging[0]} == slow_aging[0]
    assert all(v == 0 for k, v in fast_aging[0].items() if k not in slow_aging[0])
    assert fast_sales == slow_sales and len(fast_sales) > 20
    summed: dict[tuple[str, str], Decimal] = {}
    for r in segments.rows:
        summed[(str(r["currency"]), str(r["bucket"]))] = summed.get((str(r["currency"]), str(r["bucket"])), 0) + \
            Decimal(str(r["amount"]))  # fmt: skip
    assert {(r["currency"], r["bucket"]): Decimal(str(r["amount"])) for r in tenant.rows} == summed
