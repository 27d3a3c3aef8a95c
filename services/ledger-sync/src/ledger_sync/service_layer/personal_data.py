"""A customer's personal data in the ledger: export it (GDPR Art. 15) and erase it (Art. 17).

Erasure is one transaction: the customer row keeps its id and gets the pseudonym, contacts and tags go, free-text
notes on its documents go, raw ERP payloads that mention it are dropped, its `customer.upserted` events still in
the outbox (or its dead letters, from where a replay would bring them back) are removed, a tombstone is written
(honoured by every later write: domain.personal_data.keep_erased) and `customer.erased` goes to the outbox for the
other services. The money facts (invoices, payments, credit notes, allocations, balances) are kept.
A second erasure changes nothing and answers what the first one did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import new_event
from dunning_events.events import CustomerErased, CustomerUpserted, ErasureReason
from dunning_events.money import from_minor
from dunning_events.outbox import OutboxWriter
from dunning_events.topics import partition_key
from dunning_kit.clock import Clock
from dunning_kit.personal_data import forget_idempotent_answers
from ledger_sync.adapters import orm
from ledger_sync.domain.personal_data import ERP_CUSTOMER_REFERENCES, new_pseudonym
from ledger_sync.service_layer.ledger import SOURCE

SERVICE = "ledger-sync"


@dataclass(frozen=True)
class Erasure:
    customer_id: str
    erased_at: datetime
    pseudonym: str
    reason: str

    def answer(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "erased_at": self.erased_at.isoformat(), "pseudonym": self.pseudonym}


def _mentions(table: Any, customer_id: Any) -> Any:
    """The raw ERP records (quarantine, webhook notices) that are this customer or name it as their customer
    (`customer_id`: a value or a column)."""
    payload = table.c.payload
    named = [payload[path].astext == customer_id for path in ERP_CUSTOMER_REFERENCES]  # `payload #>> path`
    return or_(and_(table.c.entity == "customer", table.c.entity_id == customer_id), *named)


async def drop_erased_payloads(session: AsyncSession, table: Any, ids: list[int]) -> None:
    """Raw ERP records stored after an erasure (a quarantined record, a webhook's object) keep their row but not
    their payload when they are or name an erased customer: the tombstone rule for what is not a ledger row."""
    t = orm.customer_tombstones.c
    erased = exists().where(t.tenant_id == table.c.tenant_id, _mentions(table, t.customer_id))
    await session.execute(
        update(table).where(table.c.id.in_(ids), table.c.payload.is_not(None), erased).values(payload=None)
    )


def _money(minor: int, currency: str) -> str:
    return format(from_minor(minor, currency), "f")


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class CustomerPersonalData:
    """Export and erasure of one tenant's customers, inside the caller's session (the caller commits)."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def _tombstone(self, customer_id: str) -> Erasure | None:
        t = orm.customer_tombstones.c
        row = (
            await self.session.execute(
                select(orm.customer_tombstones).where(t.tenant_id == self.tenant_id, t.customer_id == customer_id)
            )
        ).first()
        return Erasure(row.customer_id, row.erased_at, row.pseudonym, row.reason) if row else None

    # ------------------------------------------------------------------ export (Art. 15)

    async def export(self, customer_id: str) -> dict[str, Any] | None:
        """ledger-sync's piece of the export (`{service, customer_id, erased, data}`); None: no such customer."""
        c = orm.customers.c
        customer = (
            await self.session.execute(
                select(orm.customers).where(c.tenant_id == self.tenant_id, c.customer_id == customer_id)
            )
        ).first()
        if customer is None:
            return None
        tombstone = await self._tombstone(customer_id)
        invoices, notes = await self._invoices(customer_id)
        payments, payment_notes = await self._payments(customer_id)
        data: dict[str, list[dict[str, Any]]] = {
            "customer": [
                {
                    "customer_id": customer.customer_id, "name": customer.name, "contacts": customer.contacts,
                    "time_zone": customer.time_zone, "locale": customer.locale, "country": customer.country,
                    "tags": customer.tags, "segment": customer.segment, "consent": customer.consent,
                    "credit_hold": customer.credit_hold, "source": customer.source,
                    "updated_at": _at(customer.updated_at),
                }
            ],
            "invoices": invoices,
            "payments": payments,
            "credit_notes": await self._credit_notes(customer_id),
            "notes": notes + payment_notes,
            "erp_records": await self._erp_records(customer_id),
            "erasure": [] if tombstone is None else [
                {"erased_at": _at(tombstone.erased_at), "pseudonym": tombstone.pseudonym, "reason": tombstone.reason}
            ],
        }  # fmt: skip
        return {"service": SERVICE, "customer_id": customer_id, "erased": tombstone is not None, "data": data}

    async def _invoices(self, customer_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        i = orm.invoices.c
        rows = await self.session.execute(
            select(orm.invoices)
            .where(i.tenant_id == self.tenant_id, i.customer_id == customer_id)
            .order_by(i.invoice_id)
        )
        invoices, notes = [], []
        for r in rows:
            invoices.append(
                {
                    "invoice_id": r.invoice_id, "number": r.number, "currency": r.currency,
                    "total": _money(r.total_minor, r.currency), "balance": _money(r.balance_minor, r.currency),
                    "issue_date": r.issue_date.isoformat(), "due_date": r.due_date.isoformat() if r.due_date else None,
                    "terms": r.terms, "status": r.status, "disputed": r.disputed, "source": r.source,
                }
            )  # fmt: skip
            if r.dispute_reason:
                notes.append({"document": "invoice", "id": r.invoice_id, "field": "dispute_reason",
                              "text": r.dispute_reason})  # fmt: skip
        return invoices, notes

    async def _payments(self, customer_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        p = orm.payments.c
        rows = await self.session.execute(
            select(orm.payments)
            .where(p.tenant_id == self.tenant_id, p.customer_id == customer_id)
            .order_by(p.payment_id)
        )
        payments, notes = [], []
        for r in rows:
            payments.append(
                {
                    "payment_id": r.payment_id, "currency": r.currency, "amount": _money(r.amount_minor, r.currency),
                    "unapplied": _money(r.unapplied_minor, r.currency), "received_on": r.received_on.isoformat(),
                    "reference": r.reference, "status": r.status, "source": r.source,
                }
            )  # fmt: skip
            if r.reversal_reason:
                notes.append({"document": "payment", "id": r.payment_id, "field": "reversal_reason",
                              "text": r.reversal_reason})  # fmt: skip
        return payments, notes

    async def _credit_notes(self, customer_id: str) -> list[dict[str, Any]]:
        n = orm.credit_notes.c
        rows = await self.session.execute(
            select(orm.credit_notes)
            .where(n.tenant_id == self.tenant_id, n.customer_id == customer_id)
            .order_by(n.credit_note_id)
        )
        return [
            {
                "credit_note_id": r.credit_note_id, "number": r.number, "currency": r.currency,
                "total": _money(r.total_minor, r.currency), "remaining": _money(r.remaining_minor, r.currency),
                "issued_on": r.issued_on.isoformat(), "status": r.status, "source": r.source,
            }
            for r in rows
        ]  # fmt: skip

    async def _erp_records(self, customer_id: str) -> list[dict[str, Any]]:
        q, w = orm.quarantine, orm.webhook_notices
        out: list[dict[str, Any]] = []
        for r in await self.session.execute(
            select(q).where(q.c.tenant_id == self.tenant_id, _mentions(q, customer_id)).order_by(q.c.id)
        ):
            out.append({"kind": "quarantined", "connector": r.connector, "entity": r.entity, "entity_id": r.entity_id,
                        "error": r.error, "payload": r.payload, "at": _at(r.quarantined_at)})  # fmt: skip
        for r in await self.session.execute(
            select(w).where(w.c.tenant_id == self.tenant_id, _mentions(w, customer_id)).order_by(w.c.id)
        ):
            out.append({"kind": "webhook_notice", "connector": r.connector, "entity": r.entity,
                        "entity_id": r.entity_id, "operation": r.operation, "payload": r.payload,
                        "at": _at(r.received_at)})  # fmt: skip
        return out

    # ------------------------------------------------------------------ erasure (Art. 17)

    async def erase(
        self, customer_id: str, outbox: OutboxWriter, clock: Clock, reason: ErasureReason = "data_subject_request"
    ) -> Erasure | None:
        """Erase the customer's personal data (see the module docstring); None: no such customer."""
        c = orm.customers.c
        # The row lock orders this against any upsert of the customer (which locks it too, then reads tombstones).
        locked = await self.session.scalar(
            select(c.customer_id).where(c.tenant_id == self.tenant_id, c.customer_id == customer_id).with_for_update()
        )
        if locked is None:
            return None
        done = await self._tombstone(customer_id)
        if done is not None:
            return done  # a second erasure: nothing left to do, the same answer
        erasure = Erasure(customer_id, clock.now(), new_pseudonym(), reason)
        where = {"tenant_id": self.tenant_id, "customer_id": customer_id}
        await self.session.execute(
            update(orm.customers)
            .where(c.tenant_id == self.tenant_id, c.customer_id == customer_id)
            .values(name=erasure.pseudonym, contacts=[], tags=[], updated_at=erasure.erased_at)
        )
        i, p = orm.invoices.c, orm.payments.c
        await self.session.execute(
            update(orm.invoices)
            .where(i.tenant_id == self.tenant_id, i.customer_id == customer_id, i.dispute_reason.is_not(None))
            .values(dispute_reason=None)
        )
        await self.session.execute(
            update(orm.payments)
            .where(p.tenant_id == self.tenant_id, p.customer_id == customer_id, p.reversal_reason.is_not(None))
            .values(reversal_reason=None)
        )
        # Raw ERP payloads: the ERP still holds the record; a notice not yet applied is fetched again when it is
        # processed (a notice without payload is fetched), and then lands under the tombstone rule.
        for table in (orm.quarantine, orm.webhook_notices):
            await self.session.execute(
                update(table)
                .where(table.c.tenant_id == self.tenant_id, _mentions(table, customer_id))
                .values(payload=None)
            )
        # Events that carry the person. Published outbox rows are already on the broker (kept an hour for
        # operations only): all of the customer's go. Unpublished customer.upserted and dead-lettered ones would
        # reach the other services after the erasure (a dead letter on a replay, long after): they go too. The
        # money events stay unpublished and dead-lettered: the other services need them (they name no one).
        key = partition_key(self.tenant_id, customer_id)
        box, dead = orm.outbox, orm.metadata.tables["outbox_dead_letters"]
        upserted = CustomerUpserted.event_type
        await self.session.execute(
            delete(box).where(box.c.key == key, or_(box.c.published_at.is_not(None), box.c.event_type == upserted))
        )
        await self.session.execute(delete(dead).where(dead.c.key == key, dead.c.event_type == upserted))
        await forget_idempotent_answers(self.session, orm.metadata, self.tenant_id, customer_id)
        await self.session.execute(
            orm.customer_tombstones.insert().values(
                **where, pseudonym=erasure.pseudonym, reason=reason, erased_at=erasure.erased_at
            )
        )
        await outbox.add(
            self.session,
            [
                new_event(
                    CustomerErased(
                        customer_id=customer_id, erased_at=erasure.erased_at, reason=reason, pseudonym=erasure.pseudonym
                    ),
                    tenant_id=self.tenant_id,
                    source=SOURCE,
                    occurred_at=erasure.erased_at,
                )
            ],
        )
        return erasure
