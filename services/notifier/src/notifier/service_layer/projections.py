"""What the notifier keeps from dunning.ledger.v1: customers (contacts, locale, consent, address) and the
current balance of every invoice - the last look reads them - plus how far each partition was applied; and
customer.erased, which scrubs what the notifier holds about a person (service_layer/erasure.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.consumer import ConsumedEvent
from dunning_events.envelope import Envelope
from dunning_events.events import (
    CreditNoteApplied,
    CustomerErased,
    CustomerUpserted,
    InvoiceCreated,
    InvoiceUpdated,
    InvoiceVoided,
    PaymentApplied,
    PaymentReversed,
)
from dunning_events.handler_table import HandlerTable, on
from dunning_events.money import to_minor
from notifier.adapters import ledger_projection
from notifier.service_layer.erasure import on_customer_erased


async def on_customer(session: AsyncSession, env: Envelope[CustomerUpserted]) -> None:
    d = env.data
    values = {
        "name": d.name,
        "locale": d.locale,
        "time_zone": d.time_zone,
        "country": d.country,
        "contacts": [c.model_dump() for c in d.contacts],
        "consent": d.consent.model_dump(),
        "postal_address": d.postal_address.model_dump() if d.postal_address else None,
    }
    await ledger_projection.upsert_customer(session, env.tenant_id, d.customer_id, values)


async def on_invoice(
    session: AsyncSession, env: Envelope[InvoiceCreated] | Envelope[InvoiceUpdated] | Envelope[InvoiceVoided]
) -> None:
    """created, updated and voided all carry the invoice as it is now; a snapshot older than the one applied (a
    replayed dead letter after a payment) changes nothing."""
    d = env.data
    values = {
        "balance_minor": to_minor(d.balance, d.currency),
        "total_minor": to_minor(d.total, d.currency),
        "status": d.status,
        "number": d.number,
        "due_date": d.due_date,
        "currency": d.currency,
        "customer_id": d.customer_id,
    }
    await ledger_projection.upsert_invoice(session, env.tenant_id, d.invoice_id, d.version, values)


async def on_allocations(
    session: AsyncSession,
    env: Envelope[PaymentApplied] | Envelope[CreditNoteApplied] | Envelope[PaymentReversed],
) -> None:
    """payment.applied, payment.reversed and credit_note.applied carry each invoice's balance (and version) after."""
    d = env.data
    for a in d.allocations:
        balance = to_minor(a.invoice_balance_after, d.currency)
        await ledger_projection.set_balance(
            session, env.tenant_id, a.invoice_id, a.invoice_version_after, balance, a.invoice_status_after
        )


# The index of what the notifier keeps from dunning.ledger.v1, keyed by the events' data classes; each batch then
# records how far it got (record_positions, the consumer's `finish`).
LEDGER_HANDLERS: HandlerTable[AsyncSession] = HandlerTable(
    on(CustomerUpserted, on_customer),
    on(InvoiceCreated, on_invoice),
    on(InvoiceUpdated, on_invoice),
    on(InvoiceVoided, on_invoice),
    on(PaymentApplied, on_allocations),
    on(PaymentReversed, on_allocations),
    on(CreditNoteApplied, on_allocations),
    on(CustomerErased, on_customer_erased),
)


async def record_positions(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    """Next offset per partition, in the projection's transaction (GREATEST: a redelivery never moves it back).

    A settlement the priority lane applied ahead of the group is no position reached: records before it may not
    be applied yet (the watermark would call the projection caught up too early)."""
    latest: dict[tuple[str, int], int] = {}
    for ev in events:
        if ev.ahead:
            continue
        key = (ev.topic, ev.partition)
        latest[key] = max(latest.get(key, -1), ev.offset + 1)
    if not latest:
        return
    await ledger_projection.advance_positions(session, latest)
