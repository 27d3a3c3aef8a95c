"""Conversion of figures into the tenant's reporting currency with its own rates: one rate per currency, the
latest on or before the figure's date, listed in the answer; a missing rate or reporting currency is a 422
naming `query.convert`; amounts in different currencies are never added unconverted."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_kit.problems import InvalidInput
from insights.domain.report import FxRateUsed
from insights.service_layer import ar_figures as f
from insights.service_layer import fx
from insights.service_layer.ar_figures import FigureRequest, Scope

from .ar_ledger import Ledger, figures_db, seed

__all__ = ["figures_db"]

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
D = date(2026, 6, 30)


async def rates(sessions: Sessions, tenant: str, reporting: str, *supplied: tuple[str, str, str]) -> None:
    async with sessions() as session, session.begin():
        await fx.save_rates(session, tenant, reporting,
                            [fx.SuppliedRate(date.fromisoformat(d), c, Decimal(r)) for d, c, r in supplied], NOW)  # fmt: skip


async def test_the_latest_rate_on_or_before_the_date_converts_and_is_listed(figures_db: Sessions) -> None:
    await rates(figures_db, "fx-1", "EUR", ("2026-06-01", "USD", "0.9"), ("2026-06-29", "USD", "0.8"),
                ("2026-07-01", "USD", "0.5"), ("2026-06-15", "GBP", "1.1"))  # fmt: skip
    async with figures_db() as session:
        conv = await fx.conversion(session, "fx-1", {"USD", "EUR", "GBP"}, D)
        assert conv.rates == {
            "USD": FxRateUsed("USD", "EUR", date(2026, 6, 29), Decimal("0.8")),
            "GBP": FxRateUsed("GBP", "EUR", date(2026, 6, 15), Decimal("1.1")),
        }
        assert conv.rate("EUR") == 1
        summed = conv.amounts({(D, ("USD", "smb")): Decimal(100), (D, ("EUR", "smb")): Decimal(5),
                               (D, ("GBP", "x")): Decimal(10)})  # fmt: skip
        assert summed == {(D, ("EUR", "smb")): Decimal(85), (D, ("EUR", "x")): Decimal(11)}


async def test_a_missing_rate_or_reporting_currency_is_refused_naming_convert(figures_db: Sessions) -> None:
    await rates(figures_db, "fx-2", "EUR", ("2026-06-10", "USD", "0.9"))
    async with figures_db() as session:
        with pytest.raises(InvalidInput) as missing:
            await fx.conversion(session, "fx-2", {"USD", "GBP"}, D)
        with pytest.raises(InvalidInput) as too_early:
            await fx.conversion(session, "fx-2", {"USD"}, date(2026, 6, 9))
        with pytest.raises(InvalidInput) as unset:
            await fx.conversion(session, "fx-none", {"USD"}, D)
    assert [e.field for e in missing.value.errors] == ["query.convert"]
    assert "no GBP->EUR rate on or before 2026-06-30" in missing.value.errors[0].reason
    assert "no USD->EUR rate on or before 2026-06-09" in too_early.value.errors[0].reason
    assert [e.field for e in unset.value.errors] == ["query.convert"]
    assert "no reporting currency" in unset.value.errors[0].reason


async def test_a_converted_figure_is_one_row_per_reporting_currency_computed_after_conversion(
    figures_db: Sessions,
) -> None:
    ledger = Ledger("fx-3")
    ledger.invoice("E1", "C-1", "100", date(2026, 6, 1), date(2026, 6, 20))
    ledger.invoice("U1", "C-1", "200", date(2026, 6, 1), date(2026, 6, 25), currency="USD")
    ledger.invoice("U2", "C-1", "50", date(2026, 6, 5), date(2026, 7, 25), currency="USD")
    await seed(figures_db, ledger)
    await rates(figures_db, "fx-3", "EUR", ("2026-06-30", "USD", "0.5"))
    async with figures_db() as session:
        plain = await f.aging(session, FigureRequest(Scope("fx-3"), [(D, D)], as_of=D))
        assert {r["currency"] for r in plain.rows} == {"EUR", "USD"} and plain.reporting_currency is None
        converted = await f.aging(session, FigureRequest(Scope("fx-3"), [(D, D)], as_of=D, convert=True))
        assert [(r["currency"], r["bucket"], r["amount"], r["count"]) for r in converted.rows] == [
            ("EUR", "current", "25.00", 1), ("EUR", "1-30", "200.00", 2), ("EUR", "31-60", "0.00", 0),
            ("EUR", "61-90", "0.00", 0), ("EUR", "91+", "0.00", 0),
        ]  # fmt: skip
        assert converted.reporting_currency == "EUR"
        assert converted.fx_rates_used == [FxRateUsed("USD", "EUR", D, Decimal("0.5"))]
        # A ratio from converted sums: AR 100 + 125 = 225 against sales 100 + 125 = 225 over 30 days.
        dso = await f.dso(session, FigureRequest(Scope("fx-3"), [(date(2026, 6, 1), D)], convert=True))
        assert [(r["currency"], r["ar"], r["credit_sales"], r["dso_standard"]) for r in dso.rows] == [
            ("EUR", "225.00", "225.00", "30.00")
        ]


async def test_rates_given_again_replace_and_page_in_order(figures_db: Sessions) -> None:
    await rates(figures_db, "fx-4", "EUR", ("2026-06-01", "USD", "0.9"), ("2026-06-01", "GBP", "1.2"))
    await rates(figures_db, "fx-4", "EUR", ("2026-06-01", "USD", "0.95"), ("2026-06-02", "USD", "0.96"))
    async with figures_db() as session:
        first = await fx.rates_page(session, "fx-4", limit=2, cursor=None, currency=None)
        assert first.next_cursor is not None
        rest = await fx.rates_page(session, "fx-4", limit=2, cursor=first.next_cursor, currency=None)
        only_usd = await fx.rates_page(session, "fx-4", limit=10, cursor=None, currency="USD")
    seen = [(r["currency"], r["date"], r["rate"]) for r in [*first.items, *rest.items]]
    assert seen == [("GBP", date(2026, 6, 1), Decimal("1.2")), ("USD", date(2026, 6, 1), Decimal("0.95")),
                    ("USD", date(2026, 6, 2), Decimal("0.96"))]  # fmt: skip
    assert rest.next_cursor is None and len(only_usd.items) == 2
