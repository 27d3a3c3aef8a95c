"""What the notifier does with ledger events (projections), step events (delivery records) and due deliveries."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_events.consumer import ConsumedEvent
from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    CreditNoteApplied,
    CustomerUpserted,
    DunningStepDue,
    InvoiceCreated,
    NotificationFailed,
    NotificationSent,
    NotificationSkipped,
    PaymentApplied,
)
from dunning_events.money import to_minor
from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from notifier.adapters import orm
from notifier.adapters.email_smtp import SmtpEmail
from notifier.domain.rendering import render_reminder

log = logging.getLogger("notifier")
SOURCE = "notifier"


# ---------------------------------------------------------------- projections (dunning.ledger.v1)


async def on_customer(session: AsyncSession, env: Envelope[CustomerUpserted]) -> None:
    d = env.data
    values = {
        "name": d.name,
        "locale": d.locale,
        "time_zone": d.time_zone,
        "contacts": [c.model_dump() for c in d.contacts],
    }
    stmt = insert(orm.customers).values(tenant_id=env.tenant_id, customer_id=d.customer_id, **values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[orm.customers.c.tenant_id, orm.customers.c.customer_id], set_=values)
    )


async def on_invoice(session: AsyncSession, env: Envelope[InvoiceCreated]) -> None:
    d = env.data
    values = {"balance_minor": to_minor(d.balance, d.currency), "status": d.status, "number": d.number}
    stmt = insert(orm.invoice_balances).values(
        tenant_id=env.tenant_id, invoice_id=d.invoice_id, customer_id=d.customer_id, currency=d.currency, **values
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[orm.invoice_balances.c.tenant_id, orm.invoice_balances.c.invoice_id], set_=values
        )
    )


async def on_allocations(session: AsyncSession, env: Envelope[PaymentApplied] | Envelope[CreditNoteApplied]) -> None:
    d = env.data
    for a in d.allocations:
        await session.execute(
            update(orm.invoice_balances)
            .where(orm.invoice_balances.c.tenant_id == env.tenant_id, orm.invoice_balances.c.invoice_id == a.invoice_id)
            .values(balance_minor=to_minor(a.invoice_balance_after, d.currency), status=a.invoice_status_after)
        )


LEDGER_HANDLERS: dict[str, Callable[[AsyncSession, Any], Awaitable[None]]] = {
    "customer.upserted": on_customer,
    "invoice.created": on_invoice,
    "invoice.updated": on_invoice,
    "invoice.voided": on_invoice,
    "payment.applied": on_allocations,
    "credit_note.applied": on_allocations,
}


# ---------------------------------------------------------------- steps (dunning.steps.v1)


def idempotency_key(tenant_id: str, customer_id: str, step_id: str, channel: str) -> str:
    return f"{tenant_id}:{customer_id}:{step_id}:{channel}"


def make_step_recorder(clock: Clock, group: str):  # type: ignore[no-untyped-def]
    async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        for ev in events:
            if ev.type != "dunning.step.due":
                continue
            with ev.traced(group):
                env: Envelope[DunningStepDue] = ev.envelope  # type: ignore[assignment]
                d = env.data
                for channel in d.channels:
                    # The unique key makes a redelivered step a no-op.
                    await session.execute(
                        insert(orm.deliveries)
                        .values(
                            id=uuid.uuid4(), tenant_id=env.tenant_id, customer_id=d.customer_id, step_id=d.step_id,
                            channel=channel, idempotency_key=idempotency_key(env.tenant_id, d.customer_id, d.step_id, channel),
                            step=d.model_dump(mode="json"), next_attempt_at=clock.now(),
                        )
                        .on_conflict_do_nothing(index_elements=[orm.deliveries.c.idempotency_key])
                    )  # fmt: skip

    return apply


def make_ledger_projector(group: str):  # type: ignore[no-untyped-def]
    async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        for ev in events:
            handler = LEDGER_HANDLERS.get(ev.type)
            if handler is not None:
                with ev.traced(group):
                    await handler(session, ev.envelope)

    return apply


# ---------------------------------------------------------------- the dispatcher (at most once)


class Dispatcher:
    """Claims due deliveries, marks them `sending` and commits BEFORE the provider call: a crash after
    that commit leaves the record `sending`, which is never retried automatically (at most once)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], outbox: OutboxWriter, clock: Clock, email: SmtpEmail,
        batch_size: int,
    ) -> None:  # fmt: skip
        self.sessions = sessions
        self.outbox = outbox
        self.clock = clock
        self.email = email
        self.batch_size = batch_size

    async def _emit(self, session: AsyncSession, env_tenant: str, data: EventData) -> None:
        await self.outbox.add(
            session, [new_event(data, tenant_id=env_tenant, source=SOURCE, occurred_at=self.clock.now())]
        )

    async def dispatch_due(self, now: datetime) -> int:
        d = orm.deliveries.c
        to_send: list[dict[str, Any]] = []
        async with self.sessions() as session, session.begin():
            rows = (
                (
                    await session.execute(
                        select(orm.deliveries)
                        .where(d.status == "pending", d.next_attempt_at <= now)
                        .order_by(d.next_attempt_at)
                        .limit(self.batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                .mappings()
                .all()
            )
            for row in rows:
                decision = await self._last_look(session, dict(row))
                if decision is None:
                    await session.execute(
                        update(orm.deliveries).where(d.id == row["id"]).values(status="sending", updated_at=func.now())
                    )
                    to_send.append(dict(row))
        for row in to_send:
            await self._send(row)
        return len(rows)

    async def _last_look(self, session: AsyncSession, row: dict[str, Any]) -> str | None:
        """Skip (and say why) when every invoice of the step is already settled; None = go ahead."""
        b = orm.invoice_balances.c
        ids = [inv["invoice_id"] for inv in row["step"]["invoices"]]
        open_count = await session.scalar(
            select(func.count()).where(
                b.tenant_id == row["tenant_id"], b.invoice_id.in_(ids), b.status == "open", b.balance_minor > 0
            )
        )
        if open_count:
            return None
        reason = "every invoice of the step is already settled"
        await session.execute(
            update(orm.deliveries).where(orm.deliveries.c.id == row["id"]).values(status="skipped", error=reason)
        )
        await self._emit(
            session, row["tenant_id"],
            NotificationSkipped(customer_id=row["customer_id"], delivery_id=str(row["id"]), step_id=row["step_id"],
                                channel=row["channel"], invoice_ids=ids, reason=reason),
        )  # fmt: skip
        return reason

    async def _send(self, row: dict[str, Any]) -> None:
        async with self.sessions() as session:
            customer = (
                (
                    await session.execute(
                        select(orm.customers).where(
                            orm.customers.c.tenant_id == row["tenant_id"],
                            orm.customers.c.customer_id == row["customer_id"],
                        )
                    )
                )
                .mappings()
                .first()
            )
        ids = [inv["invoice_id"] for inv in row["step"]["invoices"]]
        recipient = next((c["email"] for c in (customer or {}).get("contacts", []) if c.get("email")), None)
        status, error, message_id, subject, body = "failed", None, None, None, None
        if customer is None or recipient is None:
            error = "the customer has no email address on record"
        else:
            rendered = render_reminder(row["step"], customer["name"], customer["locale"])
            subject, body = rendered.subject, rendered.text
            try:
                message_id = await self.email.send(recipient, subject, body, row["idempotency_key"])
                status = "sent"
            except Exception as exc:
                error = f"smtp: {exc}"
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(orm.deliveries).where(orm.deliveries.c.id == row["id"]).values(
                    status=status, error=error, provider_message_id=message_id, recipient=recipient, subject=subject,
                    body_text=body, attempts=orm.deliveries.c.attempts + 1, updated_at=func.now(),
                )
            )  # fmt: skip
            common = dict(customer_id=row["customer_id"], delivery_id=str(row["id"]), step_id=row["step_id"],
                          channel=row["channel"], recipient=recipient, invoice_ids=ids)  # fmt: skip
            if status == "sent":
                data: EventData = NotificationSent(**common, provider="smtp", provider_message_id=message_id)
            else:
                data = NotificationFailed(**common, reason=error, permanent=True)
            await self._emit(session, row["tenant_id"], data)

    async def due_stats(self, now: datetime) -> tuple[int, float]:
        d = orm.deliveries.c
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(
                        func.count(), func.coalesce(func.extract("epoch", now - func.min(d.next_attempt_at)), 0)
                    ).where(d.status == "pending", d.next_attempt_at <= now)
                )
            ).one()
        return int(row[0]), float(row[1])
