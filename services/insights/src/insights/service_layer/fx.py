"""FX for figures: the tenant's reporting currency and its own rates, and the conversion of a figure's sums.

A figure converts with ONE rate per currency: the latest the tenant supplied on or before the figure's date
(its `as_of`, or the end of its period), listed in the answer. The reporting currency converts at 1. A currency
without such a rate, or a tenant without a reporting currency, is refused (422 naming `query.convert`): a
figure is never a sum of amounts in different currencies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_kit.pages import CursorCodec, Page
from dunning_kit.problems import FieldError, InvalidInput
from insights.adapters.orm import fx_rates, tenants
from insights.domain.report import FxRateUsed

Key = tuple[Any, ...]  # (currency, *group values): what a figure row is about
RATES_CURSOR = CursorCodec("insights.fx_rates")
CONVERT_FIELD = "query.convert"


@dataclass(frozen=True)
class SuppliedRate:
    rate_date: date
    currency: str
    rate: Decimal


@dataclass(frozen=True)
class Conversion:
    """The rates one figure converts with, by currency (the reporting currency's own is not listed)."""

    reporting_currency: str
    rates: Mapping[str, FxRateUsed]

    def rate(self, currency: str) -> Decimal:
        return Decimal(1) if currency == self.reporting_currency else self.rates[currency].rate

    def amounts(self, sums: Mapping[tuple[Any, Key], Decimal]) -> dict[tuple[Any, Key], Decimal]:
        """Sums keyed by (when, (currency, *groups...)) as sums in the reporting currency, the currencies of one
        key added up after conversion."""
        out: dict[tuple[Any, Key], Decimal] = {}
        for (at, key), value in sums.items():
            moved = (at, self._rekey(key))
            out[moved] = out.get(moved, Decimal(0)) + value * self.rate(key[0])
        return out

    def counts(self, sums: Mapping[tuple[Any, Key], int]) -> dict[tuple[Any, Key], int]:
        out: dict[tuple[Any, Key], int] = {}
        for (at, key), value in sums.items():
            moved = (at, self._rekey(key))
            out[moved] = out.get(moved, 0) + value
        return out

    def _rekey(self, key: Key) -> Key:
        return (self.reporting_currency, *key[1:])


def plain(rate: Decimal) -> Decimal:
    """A rate as it was given: NUMERIC(24, 10) pads 0.8 to 0.8000000000; no exponent form for whole rates."""
    return rate.quantize(Decimal(1)) if rate == rate.to_integral_value() else rate.normalize()


async def reporting_currency(session: AsyncSession, tenant_id: str) -> str | None:
    value = await session.scalar(
        text("SELECT reporting_currency FROM tenants WHERE tenant_id = :tenant"), {"tenant": tenant_id}
    )
    return None if value is None else str(value)


async def conversion(session: AsyncSession, tenant_id: str, currencies: set[str], on: date) -> Conversion:
    """The rates to convert `currencies` on `on`; 422 naming `query.convert` when one is missing."""
    reporting = await reporting_currency(session, tenant_id)
    if reporting is None:
        raise InvalidInput(
            [FieldError(CONVERT_FIELD, "the tenant has no reporting currency: set one with PUT /v1/fx-rates", "query")]
        )
    wanted = sorted(currencies - {reporting})
    rows = (
        await session.execute(
            text(
                "SELECT DISTINCT ON (currency) currency, rate_date, rate FROM fx_rates"
                " WHERE tenant_id = :tenant AND quote_currency = :quote AND currency = ANY(:currencies)"
                " AND rate_date <= :on ORDER BY currency, rate_date DESC"
            ),
            {"tenant": tenant_id, "quote": reporting, "currencies": wanted, "on": on},
        )
    ).all()
    rates = {r.currency: FxRateUsed(r.currency, reporting, r.rate_date, plain(Decimal(r.rate))) for r in rows}
    missing = [c for c in wanted if c not in rates]
    if missing:
        reason = "; ".join(f"no {c}->{reporting} rate on or before {on.isoformat()}" for c in missing)
        raise InvalidInput([FieldError(CONVERT_FIELD, f"{reason} (supply it with PUT /v1/fx-rates)", "query")])
    return Conversion(reporting, rates)


async def save_rates(
    session: AsyncSession, tenant_id: str, reporting: str, rates: Sequence[SuppliedRate], now: datetime
) -> None:
    """Set the reporting currency and upsert the rates into it (a rate given again for a date replaces it)."""
    upsert_tenant = insert(tenants).values(tenant_id=tenant_id, reporting_currency=reporting, updated_at=now)
    await session.execute(
        upsert_tenant.on_conflict_do_update(
            index_elements=[tenants.c.tenant_id], set_={"reporting_currency": reporting, "updated_at": now}
        )
    )
    # One row per (currency, date): the last of duplicates in one request wins, as a later request would.
    latest = {(r.currency, r.rate_date): r for r in rates}
    if not latest:
        return
    rows = [
        {"tenant_id": tenant_id, "quote_currency": reporting, "currency": r.currency, "rate_date": r.rate_date,
         "rate": r.rate, "updated_at": now}
        for r in latest.values()
    ]  # fmt: skip
    stmt = insert(fx_rates).values(rows)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[fx_rates.c.tenant_id, fx_rates.c.quote_currency, fx_rates.c.currency, fx_rates.c.rate_date],
            set_={"rate": stmt.excluded.rate, "updated_at": now},
        )
    )


async def rates_page(
    session: AsyncSession, tenant_id: str, *, limit: int, cursor: str | None, currency: str | None
) -> Page[dict[str, Any]]:
    """The tenant's rates by (reporting currency, currency, date), a keyset page."""
    after = RATES_CURSOR.decode(cursor, 3)
    rows = (
        await session.execute(
            text(
                "SELECT quote_currency, currency, rate_date, rate FROM fx_rates WHERE tenant_id = :tenant"
                " AND (CAST(:currency AS text) IS NULL OR currency = :currency)"
                " AND (CAST(:after_quote AS text) IS NULL"
                "      OR (quote_currency, currency, rate_date) > (:after_quote, :after_currency, :after_date))"
                " ORDER BY quote_currency, currency, rate_date LIMIT :limit"
            ),
            {
                "tenant": tenant_id,
                "currency": currency,
                "limit": limit + 1,
                "after_quote": after[0] if after else None,
                "after_currency": after[1] if after else None,
                "after_date": after[2] if after else None,
            },
        )
    ).all()
    return RATES_CURSOR.page(
        rows,
        limit,
        lambda r: (r.quote_currency, r.currency, r.rate_date),
        lambda r: {
            "reporting_currency": r.quote_currency,
            "currency": r.currency,
            "date": r.rate_date,
            "rate": plain(Decimal(r.rate)),
        },
    )
