"""The portfolio: the open invoices behind the figures, one page at a time, with their customer, age and the
last and next dunning step."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from dunning_kit.auth import Tenant
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, Limit, Page
from insights.domain.formulas import Bucket
from insights.entrypoints.deps import Runtime
from insights.service_layer import portfolio
from insights.service_layer.ar_figures import Scope, check_scope
from insights.service_layer.portfolio import PortfolioFilter, Sort

router = APIRouter(prefix="/v1/portfolio", tags=["portfolio"])


class PortfolioInvoice(BaseModel):
    invoice_id: str
    number: str
    customer_id: str
    customer_name: str | None
    segment: str | None
    currency: str
    balance: Decimal
    due_date: date
    disputed: bool = Field(description="A dispute about it is open")
    days_overdue: int
    bucket: Bucket
    last_step_name: str | None
    last_step_at: datetime | None
    next_step_name: str | None
    next_step_at: datetime | None


@router.get("", response_model=Page[PortfolioInvoice], description=PAGE_CONTRACT,
            summary="Open invoices (balance not zero) with customer, age and dunning steps; filtered and sorted")  # fmt: skip
async def open_invoices(
    principal: Tenant,
    runtime: Runtime,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    sort: Annotated[
        Sort, Query(description="The order: balance, due date or days overdue; - for descending")
    ] = "-balance",
    bucket: Annotated[Bucket | None, Query(description="Only invoices in this aging bucket today")] = None,
    currency: Annotated[str | None, Query(pattern="^[A-Z]{3}$")] = None,
    segment: Annotated[str | None, Query(max_length=100)] = None,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    min_balance: Annotated[
        Decimal | None, Query(max_digits=24, decimal_places=4, description="Balance at least this")
    ] = None,
    disputed: Annotated[
        bool | None, Query(description="Only invoices with (true) or without (false) an open dispute")
    ] = None,
) -> Any:
    async with runtime.sessions() as session:
        await check_scope(session, Scope(principal.tenant_id, segment=segment, customer_id=customer_id))
        where = PortfolioFilter(bucket, currency, segment, customer_id, min_balance, disputed)
        return await portfolio.open_invoices(session, principal.tenant_id, runtime.clock.now().date(), where, sort,
                                             limit=limit, cursor=cursor)  # fmt: skip
