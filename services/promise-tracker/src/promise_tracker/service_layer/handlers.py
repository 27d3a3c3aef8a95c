"""How promise-tracker keeps its view of open invoices from dunning.ledger.v1."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.consumer import ConsumedEvent
from dunning_events.money import to_minor
from promise_tracker.adapters import orm


async def project_ledger(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    t = orm.invoices
    for ev in events:
        d = ev.data
        if ev.type in ("invoice.created", "invoice.updated", "invoice.voided"):
            values = {"balance_minor": to_minor(d.balance, d.currency), "status": d.status, "due_date": d.due_date}
            stmt = insert(t).values(
                tenant_id=ev.envelope.tenant_id, invoice_id=d.invoice_id, customer_id=d.customer_id,
                number=d.number, currency=d.currency, **values,
            )  # fmt: skip
            await session.execute(
                stmt.on_conflict_do_update(index_elements=[t.c.tenant_id, t.c.invoice_id], set_=values)
            )
        elif ev.type in ("payment.applied", "credit_note.applied"):
            for a in d.allocations:
                await session.execute(
                    update(t)
                    .where(t.c.tenant_id == ev.envelope.tenant_id, t.c.invoice_id == a.invoice_id)
                    .values(balance_minor=to_minor(a.invoice_balance_after, d.currency), status=a.invoice_status_after)
                )
