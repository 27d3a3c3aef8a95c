"""The portfolio: open invoices only, filtered by bucket, currency, segment, customer, minimum balance and dispute,
sorted by balance, due date or days overdue, walked whole in keyset pages."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_kit.problems import InvalidInput
from insights.domain.formulas import BUCKETS
from insights.service_layer.portfolio import PortfolioFilter, Sort, due_dates_of, open_invoices

from .ar_ledger import Ledger, figures_db, seed

__all__ = ["figures_db"]

Sessions = async_sessionmaker[AsyncSession]
TODAY = date(2026, 6, 30)
# invoice: (days past due, balance, currency, customer)
OPEN = {"A": (-5, "300", "EUR", "C-1"), "B": (0, "50", "EUR", "C-2"), "C": (1, "300", "USD", "C-1"),
        "D": (30, "75.5", "EUR", "C-2"), "E": (31, "1000", "EUR", "C-1"), "F": (90, "20", "EUR", "C-3"),
        "G": (91, "640", "USD", "C-1")}  # fmt: skip


@pytest.fixture(scope="module")
async def portfolio(figures_db: Sessions) -> Sessions:
    ledger = Ledger("pf")
    ledger.customer("C-1", "smb")
    ledger.customer("C-2", "enterprise")
    for invoice, (past_due, balance, currency, customer) in OPEN.items():
        due = TODAY - timedelta(days=past_due)
        ledger.invoice(invoice, customer, balance, due - timedelta(days=30), due, currency=currency)
    ledger.invoice("PAID", "C-1", "5000", TODAY - timedelta(days=40), TODAY - timedelta(days=10))
    ledger.change("PAID", "payment", TODAY - timedelta(days=1), "5000")
    await seed(figures_db, ledger)
    return figures_db


async def walk(sessions: Sessions, sort: Sort, where: PortfolioFilter | None = None, limit: int = 2) -> list[Any]:
    items: list[Any] = []
    cursor = None
    async with sessions() as session:
        while True:
            page = await open_invoices(session, "pf", TODAY, where or PortfolioFilter(), sort, limit=limit,
                                       cursor=cursor)  # fmt: skip
            items += page.items
            if (cursor := page.next_cursor) is None:
                return items


async def test_only_open_invoices_in_the_order_asked_walked_whole(portfolio: Sessions) -> None:
    by_balance = await walk(portfolio, "-balance")
    assert [i["invoice_id"] for i in by_balance] == [
        "E",
        "G",
        "C",
        "A",
        "D",
        "B",
        "F",
    ]  # ties: by invoice id, same direction
    assert [i["invoice_id"] for i in await walk(portfolio, "balance")] == ["F", "B", "D", "A", "C", "G", "E"]
    assert [i["invoice_id"] for i in await walk(portfolio, "-days_overdue", limit=3)] == list("GFEDCBA")
    assert [i["invoice_id"] for i in await walk(portfolio, "days_overdue")] == list("ABCDEFG")
    assert [i["invoice_id"] for i in await walk(portfolio, "due_date")] == list("GFEDCBA")
    d = next(i for i in by_balance if i["invoice_id"] == "D")
    assert (d["balance"], d["days_overdue"], d["bucket"], d["segment"], d["currency"]) == (
        Decimal("75.5"), 30, "1-30", "enterprise", "EUR")  # fmt: skip
    a = next(i for i in by_balance if i["invoice_id"] == "A")
    assert (a["days_overdue"], a["bucket"]) == (0, "current")


async def test_filters_by_bucket_currency_segment_customer_and_minimum_balance(portfolio: Sessions) -> None:
    async def ids(**where: Any) -> set[str]:
        return {i["invoice_id"] for i in await walk(portfolio, "-balance", PortfolioFilter(**where), limit=50)}

    assert [await ids(bucket=b) for b in BUCKETS] == [{"A", "B"}, {"C", "D"}, {"E"}, {"F"}, {"G"}]
    assert await ids(currency="USD") == {"C", "G"}
    assert await ids(segment="enterprise") == {"B", "D"}
    assert await ids(customer_id="C-3") == {"F"}
    assert await ids(min_balance=Decimal("300")) == {"A", "C", "E", "G"}
    assert await ids(bucket="1-30", currency="EUR", min_balance=Decimal(70)) == {"D"}


async def test_disputed_invoices_alone_or_left_out(portfolio: Sessions) -> None:
    """The worklist's open disputes: a dispute flag from the ledger (a test's UPDATE here), largest first."""
    async with portfolio() as session, session.begin():
        await session.execute(text("UPDATE invoices SET disputed = (invoice_id IN ('C', 'F')) WHERE tenant_id = 'pf'"))
    try:
        disputed = await walk(portfolio, "-balance", PortfolioFilter(disputed=True), limit=1)
        assert [(i["invoice_id"], i["disputed"]) for i in disputed] == [("C", True), ("F", True)]
        undisputed = await walk(portfolio, "-balance", PortfolioFilter(disputed=False), limit=50)
        assert {i["invoice_id"] for i in undisputed} == {"A", "B", "D", "E", "G"}
    finally:
        async with portfolio() as session, session.begin():
            await session.execute(text("UPDATE invoices SET disputed = false WHERE tenant_id = 'pf'"))


def test_bucket_due_date_ranges_meet_without_gaps() -> None:
    ranges = [due_dates_of(b, TODAY) for b in BUCKETS]
    assert ranges[0] == (TODAY, None) and ranges[-1] == (None, TODAY - timedelta(days=91))
    for (first, _), (_, last) in pairwise(ranges):
        assert first is not None and last is not None and last == first - timedelta(days=1)


async def test_a_cursor_of_another_sort_is_refused(portfolio: Sessions) -> None:
    async with portfolio() as session:
        page = await open_invoices(session, "pf", TODAY, PortfolioFilter(), "-balance", limit=1, cursor=None)
        with pytest.raises(InvalidInput) as refused:
            await open_invoices(session, "pf", TODAY, PortfolioFilter(), "due_date", limit=1, cursor=page.next_cursor)
    assert [e.field for e in refused.value.errors] == ["query.cursor"]
