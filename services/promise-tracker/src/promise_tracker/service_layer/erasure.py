"""customer.erased in the promise tracker (GDPR Art. 17), applied in the ledger consumer's transaction.

The customer's name becomes the pseudonym; the free-text notes of its promises and plans, and the reasons an
operator typed when cancelling one, are deleted. The money facts stay (amounts, dates, what was received,
kept or broken, and who recorded each: collector, customer or inbound reply), and so does every running
promise: payments are still matched to it, and its outcome still reaches the policy engine, which no longer
duns the customer. From now on no new promise or plan is taken for it (PromiseBook). Applying it again
changes nothing.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope
from dunning_events.events import CustomerErased
from dunning_kit.personal_data import forget_published_events
from promise_tracker.adapters import orm

ERASED_TEXT = "[erased]"


def _typed_by_operator(table: Table) -> ColumnElement[bool]:
    """A cancelled promise's or plan's reason that someone typed (the tracker's own reasons hold no personal text:
    "withdrawn", "plan defaulted: ...")."""
    reason = table.c.reason
    return (
        (table.c.status == "cancelled")
        & reason.isnot(None)
        & reason.notin_(["withdrawn", ERASED_TEXT])
        & ~reason.like("plan defaulted:%")
    )


async def on_customer_erased(session: AsyncSession, env: Envelope[CustomerErased]) -> None:
    d = env.data
    cu = orm.customers
    await session.execute(
        insert(cu)
        .values(tenant_id=env.tenant_id, customer_id=d.customer_id, name=d.pseudonym, erased_at=d.erased_at)
        .on_conflict_do_update(
            index_elements=[cu.c.tenant_id, cu.c.customer_id],
            set_={"name": d.pseudonym, "erased_at": d.erased_at},
            where=cu.c.erased_at.is_(None),
        )
    )
    for table in (orm.promises, orm.plans):
        mine = (table.c.tenant_id == env.tenant_id) & (table.c.customer_id == d.customer_id)
        await session.execute(update(table).where(mine, table.c.note.isnot(None)).values(note=None))
        await session.execute(update(table).where(mine, _typed_by_operator(table)).values(reason=ERASED_TEXT))
    await forget_published_events(session, orm.outbox, env.tenant_id, d.customer_id)


async def is_erased(session: AsyncSession, tenant_id: str, customer_id: str) -> bool:
    cu = orm.customers.c
    erased = await session.scalar(select(cu.erased_at).where(cu.tenant_id == tenant_id, cu.customer_id == customer_id))
    return erased is not None
