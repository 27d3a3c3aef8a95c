"""The portfolio: the tenant's open invoices (balance not zero now) with their customer, age and dunning steps,
filtered and sorted, as keyset pages (the sort key then the invoice id, so a walk while balances change serves
no invoice twice on a key that did not change)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.money import quantum
from dunning_kit.pages import CursorCodec, Page, Position
from dunning_kit.problems import FieldError, InvalidInput
from insights.domain.formulas import BUCKET_LIMITS, OLDEST_BUCKET, Bucket, aging_bucket

Sort = Literal["-balance", "balance", "due_date", "-due_date", "days_overdue", "-days_overdue"]
# sort -> (column, direction); days overdue rise as the due date falls.
SORTS: dict[str, tuple[str, str]] = {
    "-balance": ("balance", "DESC"),
    "balance": ("balance", "ASC"),
    "due_date": ("due_date", "ASC"),
    "-due_date": ("due_date", "DESC"),
    "days_overdue": ("due_date", "DESC"),
    "-days_overdue": ("due_date", "ASC"),
}


@dataclass(frozen=True)
class PortfolioFilter:
    bucket: Bucket | None = None
    currency: str | None = None
    segment: str | None = None
    customer_id: str | None = None
    min_balance: Decimal | None = None
    disputed: bool | None = None


def due_dates_of(bucket: Bucket, today: date) -> tuple[date | None, date | None]:
    """The due dates (first, last; None = open-ended) an invoice has when it is in `bucket` today."""
    previous: int | None = None  # the last day past due of the bucket before
    for last_day, name in BUCKET_LIMITS:
        if name == bucket:  # days past due in (previous, last_day]
            return today - timedelta(days=last_day), None if previous is None else today - timedelta(days=previous + 1)
        previous = last_day
    if bucket != OLDEST_BUCKET:
        raise ValueError(f"no aging bucket {bucket!r}")
    return None, today - timedelta(days=BUCKET_LIMITS[-1][0] + 1)


def _codec(sort: str) -> CursorCodec:
    return CursorCodec(f"insights.portfolio{sort}")  # a cursor of another sort is refused, not misread


async def open_invoices(
    session: AsyncSession, tenant_id: str, today: date, where: PortfolioFilter, sort: Sort, *, limit: int,
    cursor: str | None,
) -> Page[dict[str, Any]]:  # fmt: skip
    column, direction = SORTS[sort]
    codec = _codec(sort)
    after = codec.decode(cursor, 2)
    params: dict[str, Any] = {"tenant": tenant_id, "limit": limit + 1, "currency": where.currency,
                              "segment": where.segment, "customer_id": where.customer_id,
                              "min_balance": where.min_balance, "disputed": where.disputed}  # fmt: skip
    sql = (
        "SELECT i.invoice_id, i.number, i.customer_id, cu.name AS customer_name, cu.segment, i.currency, i.balance,"
        " i.due_date, i.disputed, i.last_step_name, i.last_step_at, i.next_step_name, i.next_step_at FROM invoices i"
        " LEFT JOIN customers cu ON cu.tenant_id = i.tenant_id AND cu.customer_id = i.customer_id"
        " WHERE i.tenant_id = :tenant AND i.balance <> 0"
    )
    if where.currency is not None:
        sql += " AND i.currency = :currency"
    if where.segment is not None:
        sql += " AND cu.segment = :segment"
    if where.customer_id is not None:
        sql += " AND i.customer_id = :customer_id"
    if where.min_balance is not None:
        sql += " AND i.balance >= :min_balance"
    if where.disputed is not None:
        sql += " AND i.disputed" if where.disputed else " AND NOT i.disputed"
    if where.bucket is not None:
        first, last = due_dates_of(where.bucket, today)
        if first is not None:
            sql += " AND i.due_date >= :first_due"
        if last is not None:
            sql += " AND i.due_date <= :last_due"
        params.update(first_due=first, last_due=last)
    if after is not None:
        try:
            params["after_key"] = Decimal(after[0]) if column == "balance" else date.fromisoformat(str(after[0]))
        except (ArithmeticError, ValueError):
            raise InvalidInput([FieldError("query.cursor", "not a cursor this API returned", "query")]) from None
        params["after_id"] = after[1]
        sql += f" AND (i.{column}, i.invoice_id) {'<' if direction == 'DESC' else '>'} (:after_key, :after_id)"
    sql += f" ORDER BY i.{column} {direction}, i.invoice_id {direction} LIMIT :limit"
    rows = (await session.execute(text(sql), params)).all()

    def position(row: Any) -> Position:
        return (str(row.balance) if column == "balance" else row.due_date.isoformat(), row.invoice_id)

    def view(row: Any) -> dict[str, Any]:
        past_due = (today - row.due_date).days
        # The balance at its currency's precision, as the figures show money (NUMERIC(24, 4) pads it).
        balance = Decimal(row.balance).quantize(quantum(row.currency))
        return {**row._asdict(), "balance": balance, "days_overdue": max(0, past_due),
                "bucket": aging_bucket(past_due)}  # fmt: skip

    return codec.page(rows, limit, position, view)
