"""The ledger's read side: one tenant's objects, keyset-paginated by external id."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.money import from_minor
from dunning_kit.pages import CursorCodec, Page
from ledger_sync.adapters import orm

# One cursor per list: a customers cursor handed to /v1/invoices is refused (422 naming `cursor`).
CUSTOMERS = CursorCodec("ledger.customers")
INVOICES = CursorCodec("ledger.invoices")
PAYMENTS = CursorCodec("ledger.payments")
CREDIT_NOTES = CursorCodec("ledger.credit_notes")


async def _page(
    session: AsyncSession,
    stmt: Select[Any],
    id_col: Any,
    codec: CursorCodec,
    limit: int,
    cursor: str | None,
    view: Callable[[Any], dict[str, Any]],
) -> Page[dict[str, Any]]:
    """Keyset on the external id: the primary key (tenant_id, id) is the order, so inserts never shift a page."""
    if (after := codec.decode(cursor, 1)) is not None:
        stmt = stmt.where(id_col > after[0])
    rows = list((await session.execute(stmt.order_by(id_col).limit(limit + 1))).mappings())
    return codec.page(rows, limit, lambda r: (r[id_col.key],), view)


def _money(minor: int, currency: str) -> str:
    return format(from_minor(minor, currency), "f")


def customer_view(r: Any) -> dict[str, Any]:
    return {
        "id": r["customer_id"],
        "name": r["name"],
        "contacts": r["contacts"],
        "time_zone": r["time_zone"],
        "locale": r["locale"],
        "country": r["country"],
        "tags": r["tags"],
        "segment": r["segment"],
        "consent": r["consent"],
        "credit_hold": r["credit_hold"],
        "source": r["source"],
        "updated_at": r["updated_at"].isoformat(),
    }


def invoice_view(r: Any, as_of: date | None = None) -> dict[str, Any]:
    cur = r["currency"]
    overdue = r["status"] == "open" and r["due_date"] is not None and as_of is not None and r["due_date"] < as_of
    return {
        "id": r["invoice_id"],
        "customer_id": r["customer_id"],
        "number": r["number"],
        "currency": cur,
        "total": _money(r["total_minor"], cur),
        "balance": _money(r["balance_minor"], cur),
        "cancelled": _money(r["cancelled_minor"], cur),
        "issue_date": r["issue_date"].isoformat(),
        "due_date": r["due_date"].isoformat() if r["due_date"] else None,
        "terms": r["terms"],
        "status": r["status"],
        "disputed": r["disputed"],
        "dispute_reason": r["dispute_reason"],
        "days_overdue": (as_of - r["due_date"]).days if overdue and as_of else 0,
        "source": r["source"],
        "updated_at": r["updated_at"].isoformat(),
    }


def payment_view(r: Any) -> dict[str, Any]:
    cur = r["currency"]
    return {
        "id": r["payment_id"],
        "customer_id": r["customer_id"],
        "currency": cur,
        "amount": _money(r["amount_minor"], cur),
        "unapplied": _money(r["unapplied_minor"], cur),
        "received_on": r["received_on"].isoformat(),
        "reference": r["reference"],
        "status": r["status"],
        "reversal_reason": r["reversal_reason"],
        "source": r["source"],
    }


def credit_note_view(r: Any) -> dict[str, Any]:
    cur = r["currency"]
    return {
        "id": r["credit_note_id"],
        "customer_id": r["customer_id"],
        "number": r["number"],
        "currency": cur,
        "total": _money(r["total_minor"], cur),
        "remaining": _money(r["remaining_minor"], cur),
        "issued_on": r["issued_on"].isoformat(),
        "status": r["status"],
        "source": r["source"],
    }


class LedgerQueries:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def customers(self, *, limit: int, cursor: str | None, segment: str | None = None) -> Page[dict[str, Any]]:
        c = orm.customers.c
        stmt = select(orm.customers).where(c.tenant_id == self.tenant_id)
        if segment:
            stmt = stmt.where(c.segment == segment)
        return await _page(self.session, stmt, c.customer_id, CUSTOMERS, limit, cursor, customer_view)

    async def customer(self, customer_id: str) -> dict[str, Any] | None:
        c = orm.customers.c
        row = (
            (
                await self.session.execute(
                    select(orm.customers).where(c.tenant_id == self.tenant_id, c.customer_id == customer_id)
                )
            )
            .mappings()
            .first()
        )
        return customer_view(row) if row else None

    async def invoices(
        self,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        customer_id: str | None = None,
        overdue_as_of: date | None = None,
        today: date | None = None,
    ) -> Page[dict[str, Any]]:
        i = orm.invoices.c
        stmt = select(orm.invoices).where(i.tenant_id == self.tenant_id)
        if status:
            stmt = stmt.where(i.status == status)
        if customer_id:
            stmt = stmt.where(i.customer_id == customer_id)
        if overdue_as_of:
            stmt = stmt.where(i.status == "open", i.due_date < overdue_as_of)
        as_of = overdue_as_of or today
        return await _page(self.session, stmt, i.invoice_id, INVOICES, limit, cursor, lambda r: invoice_view(r, as_of))

    async def invoice(self, invoice_id: str, today: date | None = None) -> dict[str, Any] | None:
        i, a, ca = orm.invoices.c, orm.allocations.c, orm.credit_allocations.c
        row = (
            (
                await self.session.execute(
                    select(orm.invoices).where(i.tenant_id == self.tenant_id, i.invoice_id == invoice_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        view = invoice_view(row, today)
        cur = row["currency"]
        pays = await self.session.execute(
            select(a.payment_id, a.amount_minor)
            .where(a.tenant_id == self.tenant_id, a.invoice_id == invoice_id)
            .order_by(a.payment_id)
        )
        view["payments"] = [{"payment_id": p, "amount": _money(m, cur)} for p, m in pays]
        credits = await self.session.execute(
            select(ca.credit_note_id, ca.amount_minor)
            .where(ca.tenant_id == self.tenant_id, ca.invoice_id == invoice_id)
            .order_by(ca.credit_note_id)
        )
        view["credits"] = [{"credit_note_id": n, "amount": _money(m, cur)} for n, m in credits]
        return view

    async def payments(self, *, limit: int, cursor: str | None, customer_id: str | None = None) -> Page[dict[str, Any]]:
        p = orm.payments.c
        stmt = select(orm.payments).where(p.tenant_id == self.tenant_id)
        if customer_id:
            stmt = stmt.where(p.customer_id == customer_id)
        return await _page(self.session, stmt, p.payment_id, PAYMENTS, limit, cursor, payment_view)

    async def payment(self, payment_id: str) -> dict[str, Any] | None:
        p, a = orm.payments.c, orm.allocations.c
        row = (
            (
                await self.session.execute(
                    select(orm.payments).where(p.tenant_id == self.tenant_id, p.payment_id == payment_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        view = payment_view(row)
        allocs = await self.session.execute(
            select(a.invoice_id, a.amount_minor)
            .where(a.tenant_id == self.tenant_id, a.payment_id == payment_id)
            .order_by(a.invoice_id)
        )
        view["allocations"] = [{"invoice_id": inv, "amount": _money(m, row["currency"])} for inv, m in allocs]
        return view

    async def credit_notes(
        self, *, limit: int, cursor: str | None, customer_id: str | None = None
    ) -> Page[dict[str, Any]]:
        cn = orm.credit_notes.c
        stmt = select(orm.credit_notes).where(cn.tenant_id == self.tenant_id)
        if customer_id:
            stmt = stmt.where(cn.customer_id == customer_id)
        return await _page(self.session, stmt, cn.credit_note_id, CREDIT_NOTES, limit, cursor, credit_note_view)

    async def credit_note(self, credit_note_id: str) -> dict[str, Any] | None:
        cn, ca = orm.credit_notes.c, orm.credit_allocations.c
        row = (
            (
                await self.session.execute(
                    select(orm.credit_notes).where(cn.tenant_id == self.tenant_id, cn.credit_note_id == credit_note_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        view = credit_note_view(row)
        allocs = await self.session.execute(
            select(ca.invoice_id, ca.amount_minor)
            .where(ca.tenant_id == self.tenant_id, ca.credit_note_id == credit_note_id)
            .order_by(ca.invoice_id)
        )
        view["allocations"] = [{"invoice_id": inv, "amount": _money(m, row["currency"])} for inv, m in allocs]
        return view
