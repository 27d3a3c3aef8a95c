"""What the notifier holds about one customer (GDPR Art. 15): its contacts and address (the ledger projection,
consent included), the invoices it was reminded about, every delivery with its recipient and rendered bodies,
the providers' callbacks about them, the suppressed addresses and the collector tasks."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, or_, select

from dunning_kit.personal_data import PersonalData, records
from notifier.adapters import orm
from notifier.service_layer.erasure import known_addresses

SECTIONS = ("customer", "invoices", "deliveries", "provider_events", "suppressions", "collector_tasks")


async def collect(runtime: Any, tenant_id: str, customer_id: str) -> PersonalData:
    cu, inv, d, r = orm.customers.c, orm.invoice_balances.c, orm.deliveries.c, orm.receipts.c
    s, t = orm.suppressions.c, orm.collector_tasks.c
    async with runtime.sessions() as session:
        customer = await records(
            session,
            select(cu.customer_id, cu.name, cu.locale, cu.time_zone, cu.country, cu.contacts, cu.consent,
                   cu.postal_address, cu.erased_at)
            .where(cu.tenant_id == tenant_id, cu.customer_id == customer_id),
        )  # fmt: skip
        invoices = await records(
            session,
            select(inv.invoice_id, inv.number, inv.currency, inv.total_minor, inv.balance_minor, inv.due_date,
                   inv.status)
            .where(inv.tenant_id == tenant_id, inv.customer_id == customer_id)
            .order_by(inv.invoice_id),
        )  # fmt: skip
        deliveries = await records(
            session,
            select(d.id, d.step_id, d.channel, d.status, d.provider, d.recipient, d.template_id, d.locale, d.subject,
                   d.body_text, d.body_html, d.rendered_at, d.attempts, d.error, d.provider_message_id, d.sent_at,
                   d.created_at)
            .where(d.tenant_id == tenant_id, d.customer_id == customer_id)
            .order_by(d.created_at, d.id),
        )  # fmt: skip
        # Suppressions and inbound replies are kept by address: the customer's own and any from an address of theirs.
        addresses = {row["recipient"] for row in deliveries if row["recipient"]}
        if customer:
            addresses |= known_addresses(list(customer[0]["contacts"] or []), customer[0]["country"] or "US")
        events = await records(
            session,
            select(r.provider, r.provider_event_id, r.delivery_id, r.status, r.received_at, r.payload)
            .where(or_(r.delivery_id.in_([uuid.UUID(row["id"]) for row in deliveries]),
                       and_(r.delivery_id.is_(None), r.payload["From"].astext.in_(sorted(addresses)))))
            .order_by(r.received_at, r.provider_event_id),
        )  # fmt: skip
        suppressions = await records(
            session,
            select(s.kind, s.address, s.reason, s.detail, s.created_at)
            .where(s.tenant_id == tenant_id, or_(s.customer_id == customer_id, s.address.in_(sorted(addresses))))
            .order_by(s.created_at, s.address),
        )
        tasks = await records(
            session,
            select(t.id, t.delivery_id, t.step_id, t.title, t.body, t.details, t.status, t.note, t.outcome,
                   t.created_at, t.completed_at)
            .where(t.tenant_id == tenant_id, t.customer_id == customer_id)
            .order_by(t.created_at),
        )  # fmt: skip
    return PersonalData(
        erased=bool(customer) and customer[0]["erased_at"] is not None,
        sections={
            "customer": customer,
            "invoices": invoices,
            "deliveries": deliveries,
            "provider_events": events,
            "suppressions": suppressions,
            "collector_tasks": tasks,
        },
    )
