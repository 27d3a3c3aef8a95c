"""FX rates: the tenant's reporting currency and its own rates, which `convert=true` on a figure converts with
(insights never fetches rates: a figure in one currency is exactly what the tenant's own rates say). Both
routes are admin's: the rates are the tenant's configuration, and every converted figure lists the rates it
used."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from dunning_kit.auth import Admin
from dunning_kit.idempotency import Idempotent
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, Limit, Page
from dunning_kit.problems import FieldError, InvalidInput
from insights.entrypoints.deps import Runtime
from insights.service_layer import fx

router = APIRouter(prefix="/v1/fx-rates", tags=["fx"])

CURRENCY = "^[A-Z]{3}$"
MAX_RATES = 5000


class FxRateIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    rate_date: date = Field(
        alias="date", description="The day the rate is for; a figure uses the latest on or before its date"
    )
    currency: str = Field(pattern=CURRENCY)
    rate: Decimal = Field(gt=0, max_digits=24, decimal_places=10,
                          description="1 unit of `currency` = `rate` units of the reporting currency")  # fmt: skip


class FxRatesIn(BaseModel):
    reporting_currency: str = Field(pattern=CURRENCY, description="The currency converted figures are in")
    rates: list[FxRateIn] = Field(max_length=MAX_RATES)


class FxRatesSaved(BaseModel):
    reporting_currency: str
    rates_saved: int


class FxRateOut(BaseModel):
    reporting_currency: str
    currency: str
    date: date
    rate: Decimal


@router.put("", response_model=FxRatesSaved, dependencies=[Idempotent],
            summary="Set the reporting currency and add or replace rates into it (admin)")  # fmt: skip
async def put_rates(principal: Admin, runtime: Runtime, body: FxRatesIn) -> FxRatesSaved:
    same = [n for n, r in enumerate(body.rates) if r.currency == body.reporting_currency]
    if same:
        raise InvalidInput([FieldError(f"rates.{n}.currency", "the reporting currency converts at 1", "body")
                            for n in same])  # fmt: skip
    rates = [fx.SuppliedRate(r.rate_date, r.currency, r.rate) for r in body.rates]
    async with runtime.sessions() as session, session.begin():
        await fx.save_rates(session, principal.tenant_id, body.reporting_currency, rates, runtime.clock.now())
    return FxRatesSaved(reporting_currency=body.reporting_currency, rates_saved=len({(r.currency, r.rate_date)
                                                                                    for r in rates}))  # fmt: skip


@router.get("", response_model=Page[FxRateOut], description=PAGE_CONTRACT,
            summary="The tenant's rates, by reporting currency, currency and date (admin)")  # fmt: skip
async def list_rates(
    principal: Admin,
    runtime: Runtime,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    currency: Annotated[str | None, Query(pattern=CURRENCY, description="Only this currency's rates")] = None,
) -> Any:
    async with runtime.sessions() as session:
        return await fx.rates_page(session, principal.tenant_id, limit=limit, cursor=cursor, currency=currency)
