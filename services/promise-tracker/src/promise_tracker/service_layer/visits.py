"""What a self-service link shows: the invoices it names, which of them a promise already covers, the customer.

The self-service router calls these after verifying the link's signature and holds no SQL itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from promise_tracker.adapters import orm

Session = AsyncSession  # what the routes hand in: one session of the runtime's


async def invoices_named(session: Session, tenant_id: str, invoice_ids: Sequence[object]) -> list[Any]:
    i = orm.invoices.c
    query = select(orm.invoices).where(i.tenant_id == tenant_id, i.invoice_id.in_([str(x) for x in invoice_ids]))
    return list((await session.execute(query)).all())


async def covered_invoices(session: Session, tenant_id: str, invoice_ids: Sequence[str]) -> set[str]:
    """The invoices an active promise or plan already covers (a second promise for them is refused)."""
    c = orm.commitments.c
    query = select(c.invoice_id).where(c.tenant_id == tenant_id, c.invoice_id.in_(list(invoice_ids)))
    return set((await session.scalars(query)).all())


async def customer(session: Session, tenant_id: str, customer_id: str) -> Any | None:
    cu = orm.customers.c
    query = select(orm.customers).where(cu.tenant_id == tenant_id, cu.customer_id == customer_id)
    return (await session.execute(query)).first()
