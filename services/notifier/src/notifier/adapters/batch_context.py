"""What a batch of due deliveries is decided from, read in one query per kind for the whole batch: the
customers (contacts, locale, consent, address), the projected balances of the step's invoices (the last
look), and the tenants' stored channel configs (sealed secrets still sealed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.adapters import orm
from notifier.domain.last_look import ProjectedInvoice


async def customers(session: AsyncSession, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(tenant, customer) -> the projected customer row."""
    c = orm.customers.c
    result = await session.execute(select(orm.customers).where(tuple_(c.tenant_id, c.customer_id).in_(sorted(keys))))
    return {(rec["tenant_id"], rec["customer_id"]): cast(Mapping[str, Any], rec) for rec in result.mappings()}


async def invoice_balances(
    session: AsyncSession, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], ProjectedInvoice]:
    """(tenant, invoice) -> what the ledger projection says the invoice owes now."""
    wanted = sorted(keys)
    if not wanted:
        return {}
    b = orm.invoice_balances.c
    result = await session.execute(
        select(b.tenant_id, b.invoice_id, b.balance_minor, b.status).where(
            tuple_(b.tenant_id, b.invoice_id).in_(wanted)
        )
    )
    return {(t, i): ProjectedInvoice(int(bal), st) for t, i, bal, st in result.all()}


async def stored_channel_configs(session: AsyncSession, tenants: Iterable[str]) -> list[tuple[str, Any]]:
    """(tenant, stored config) for the tenants that have one; secrets in it are still sealed."""
    ts = orm.tenant_settings.c
    result = await session.execute(select(ts.tenant_id, ts.config).where(ts.tenant_id.in_(sorted(tenants))))
    return [(t, cfg) for t, cfg in result.all()]
