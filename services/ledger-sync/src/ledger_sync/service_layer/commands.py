"""What ledger-sync does with each write: validate against the ledger, change it, emit events (outbox)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    Allocation,
    CustomerUpserted,
    InvoiceCreated,
    PaymentApplied,
)
from dunning_events.money import from_minor, to_minor
from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from ledger_sync.adapters import orm
from ledger_sync.domain.ledger import LedgerRuleViolation, OpenInvoice, allocate
from ledger_sync.entrypoints.schemas import CustomerIn, InvoiceIn, PaymentIn

SOURCE = "ledger-sync"


@dataclass
class Outcome:
    id: str
    created: bool
    events: list[Envelope[EventData]]


class Ledger:
    """The ledger's write side for one tenant, inside the caller's transaction."""

    def __init__(self, session: AsyncSession, outbox: OutboxWriter, clock: Clock, tenant_id: str) -> None:
        self.session = session
        self.outbox = outbox
        self.clock = clock
        self.tenant_id = tenant_id

    def _event(self, data: EventData) -> Envelope[EventData]:
        return new_event(data, tenant_id=self.tenant_id, source=SOURCE, occurred_at=self.clock.now())

    async def _emit(self, events: list[Envelope[EventData]]) -> None:
        await self.outbox.add(self.session, events)

    async def upsert_customer(self, body: CustomerIn) -> Outcome:
        c = orm.customers.c
        values = {
            "name": body.name,
            "contacts": [x.model_dump() for x in body.all_contacts()],
            "time_zone": body.time_zone,
            "locale": body.locale,
            "country": body.country,
            "tags": body.tags,
            "segment": body.segment,
            "consent": body.consent.model_dump(),
            "credit_hold": body.credit_hold,
        }
        existing = (
            (
                await self.session.execute(
                    select(orm.customers)
                    .where(c.tenant_id == self.tenant_id, c.customer_id == body.id)
                    .with_for_update()
                )
            )
            .mappings()
            .first()
        )
        if existing is not None and all(existing[k] == v for k, v in values.items()):
            return Outcome(body.id, created=False, events=[])
        stmt = insert(orm.customers).values(tenant_id=self.tenant_id, customer_id=body.id, **values)
        await self.session.execute(stmt.on_conflict_do_update(index_elements=[c.tenant_id, c.customer_id], set_=values))
        events = [
            self._event(
                CustomerUpserted(
                    customer_id=body.id,
                    name=body.name,
                    contacts=body.all_contacts(),
                    time_zone=body.time_zone,
                    locale=body.locale,
                    country=body.country,
                    tags=body.tags,
                    segment=body.segment,
                    consent=body.consent,
                    credit_hold=body.credit_hold,
                )
            )
        ]
        await self._emit(events)
        return Outcome(body.id, created=existing is None, events=events)

    async def upsert_invoice(self, body: InvoiceIn) -> Outcome:
        i = orm.invoices.c
        customer = await self.session.scalar(
            select(orm.customers.c.customer_id).where(
                orm.customers.c.tenant_id == self.tenant_id, orm.customers.c.customer_id == body.customer_id
            )
        )
        if customer is None:
            raise LedgerRuleViolation("customer_id", f"unknown customer {body.customer_id!r}")
        existing = (
            (
                await self.session.execute(
                    select(orm.invoices).where(i.tenant_id == self.tenant_id, i.invoice_id == body.id).with_for_update()
                )
            )
            .mappings()
            .first()
        )
        total_minor = to_minor(body.total, body.currency)
        if existing is not None:
            # The skeleton accepts a repeat of the same invoice; field updates arrive with issue 3.
            return Outcome(body.id, created=False, events=[])
        await self.session.execute(
            insert(orm.invoices).values(
                tenant_id=self.tenant_id,
                invoice_id=body.id,
                customer_id=body.customer_id,
                number=body.number,
                currency=body.currency,
                total_minor=total_minor,
                balance_minor=total_minor,
                issue_date=body.issue_date,
                due_date=body.due_date,
                terms=body.terms,
                status="open",
            )
        )
        events = [
            self._event(
                InvoiceCreated(
                    customer_id=body.customer_id,
                    invoice_id=body.id,
                    number=body.number,
                    currency=body.currency,
                    total=body.total,
                    balance=body.total,
                    issue_date=body.issue_date,
                    due_date=body.due_date,
                    terms=body.terms,
                )
            )
        ]
        await self._emit(events)
        return Outcome(body.id, created=True, events=events)

    async def record_payment(self, body: PaymentIn) -> Outcome:
        p = orm.payments.c
        exists = await self.session.scalar(
            select(p.payment_id).where(p.tenant_id == self.tenant_id, p.payment_id == body.id)
        )
        if exists is not None:
            return Outcome(body.id, created=False, events=[])
        i = orm.invoices.c
        ids = [a.invoice_id for a in body.allocations]
        rows = (
            await self.session.execute(
                select(i.invoice_id, i.currency, i.balance_minor, i.status)
                .where(i.tenant_id == self.tenant_id, i.invoice_id.in_(ids), i.customer_id == body.customer_id)
                .with_for_update()
            )
        ).all()
        open_invoices = {r.invoice_id: OpenInvoice(r.invoice_id, r.currency, r.balance_minor, r.status) for r in rows}
        requested = [(a.invoice_id, to_minor(a.amount, body.currency)) for a in body.allocations]
        results, unapplied = allocate(body.currency, to_minor(body.amount, body.currency), requested, open_invoices)
        await self.session.execute(
            insert(orm.payments).values(
                tenant_id=self.tenant_id,
                payment_id=body.id,
                customer_id=body.customer_id,
                currency=body.currency,
                amount_minor=to_minor(body.amount, body.currency),
                unapplied_minor=unapplied,
                received_on=body.received_on,
            )
        )
        for r in results:
            await self.session.execute(
                insert(orm.allocations).values(
                    tenant_id=self.tenant_id, payment_id=body.id, invoice_id=r.invoice_id, amount_minor=r.amount_minor
                )
            )
            await self.session.execute(
                orm.invoices.update()
                .where(i.tenant_id == self.tenant_id, i.invoice_id == r.invoice_id)
                .values(balance_minor=r.balance_after_minor, status=r.status_after)
            )
        cur = body.currency
        events = [
            self._event(
                PaymentApplied(
                    customer_id=body.customer_id,
                    payment_id=body.id,
                    currency=cur,
                    amount=body.amount,
                    received_on=body.received_on,
                    allocations=[
                        Allocation(
                            invoice_id=r.invoice_id,
                            amount=from_minor(r.amount_minor, cur),
                            invoice_balance_after=from_minor(r.balance_after_minor, cur),
                            invoice_status_after=r.status_after,  # type: ignore[arg-type]
                        )
                        for r in results
                    ],
                    unapplied=from_minor(unapplied, cur),
                )
            )
        ]
        await self._emit(events)
        return Outcome(body.id, created=True, events=events)
