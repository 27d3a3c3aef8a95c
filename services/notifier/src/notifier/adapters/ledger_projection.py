"""The notifier's projection of the ledger in SQL: customers, each invoice's current balance (guarded by the
ledger's version: an older snapshot never overwrites a newer one) and how far each partition was applied."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.tables import supersedes_sql
from notifier.adapters import orm


def newer_than_applied(version: int) -> ColumnElement[bool]:
    """The fact at `version` is newer than the projection's row (dunning_events.tables.supersedes_sql)."""
    newer: ColumnElement[bool] = supersedes_sql(version, orm.invoice_balances.c.ledger_version)
    return newer


async def upsert_customer(session: AsyncSession, tenant_id: str, customer_id: str, values: Mapping[str, Any]) -> None:
    stmt = insert(orm.customers).values(tenant_id=tenant_id, customer_id=customer_id, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[orm.customers.c.tenant_id, orm.customers.c.customer_id],
            set_=dict(values),
            # An erased customer's row stays as the erasure left it, whatever a later sync says.
            where=orm.customers.c.erased_at.is_(None),
        )
    )


async def upsert_invoice(
    session: AsyncSession, tenant_id: str, invoice_id: str, version: int, values: Mapping[str, Any]
) -> None:
    """The invoice as it is at `version`, unless the row holds a newer one."""
    b = orm.invoice_balances.c
    stmt = insert(orm.invoice_balances).values(
        tenant_id=tenant_id, invoice_id=invoice_id, ledger_version=version, **values
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[b.tenant_id, b.invoice_id],
            set_={**values, "ledger_version": func.greatest(b.ledger_version, version)},
            where=newer_than_applied(version),
        )
    )


async def set_balance(
    session: AsyncSession, tenant_id: str, invoice_id: str, version: int, balance_minor: int, status: str
) -> None:
    """An allocation's balance after, unless the row holds a newer version."""
    b = orm.invoice_balances.c
    await session.execute(
        update(orm.invoice_balances)
        .where(b.tenant_id == tenant_id, b.invoice_id == invoice_id, newer_than_applied(version))
        .values(balance_minor=balance_minor, status=status, ledger_version=func.greatest(b.ledger_version, version))
    )


async def advance_positions(session: AsyncSession, next_offsets: Mapping[tuple[str, int], int]) -> None:
    """(topic, partition) -> next offset; GREATEST: a redelivery never moves a position back."""
    stmt = insert(orm.ledger_positions).values(
        [{"topic": t, "partition": p, "next_offset": o} for (t, p), o in sorted(next_offsets.items())]
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[orm.ledger_positions.c.topic, orm.ledger_positions.c.partition],
            set_={"next_offset": func.greatest(orm.ledger_positions.c.next_offset, stmt.excluded.next_offset)},
        )
    )
