"""What the policy engine does when a ledger event arrives or a timer fires. The HANDLERS table is the index."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.consumer import ConsumedEvent
from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    CreditNoteApplied,
    CustomerUpserted,
    DunningStepCancelled,
    DunningStepDue,
    InvoiceCreated,
    InvoiceVoided,
    PaymentApplied,
    StepInvoice,
)
from dunning_events.money import from_minor, to_minor
from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from policy_engine.adapters import orm
from policy_engine.domain.policy import DEFAULT_POLICY, step_due_at

SOURCE = "policy-engine"
_STEP_NS = uuid.UUID("6d1f1c1e-6a57-4c59-9a43-5b7f3c1d2e10")


def step_id(tenant_id: str, customer_id: str, invoice_id: str, policy_id: str, step_index: int) -> str:
    """Deterministic: the same case and step always get the same id (the notifier's idempotency key)."""
    return str(uuid.uuid5(_STEP_NS, f"{tenant_id}|{customer_id}|{invoice_id}|{policy_id}|{step_index}"))


class Engine:
    def __init__(self, session: AsyncSession, outbox: OutboxWriter, clock: Clock) -> None:
        self.session = session
        self.outbox = outbox
        self.clock = clock

    async def _note(
        self,
        tenant: str,
        customer: str,
        invoice: str | None,
        kind: str,
        reason: str,
        step: str | None = None,
        **detail: object,
    ) -> None:
        await self.session.execute(
            orm.timeline.insert().values(
                tenant_id=tenant, customer_id=customer, invoice_id=invoice, at=self.clock.now(), kind=kind,
                step_name=step, reason=reason, detail=detail,
            )
        )  # fmt: skip

    async def _emit(self, data: EventData, tenant: str, cause: Envelope[EventData] | None) -> None:
        await self.outbox.add(
            self.session,
            [new_event(data, tenant_id=tenant, source=SOURCE, occurred_at=self.clock.now(), caused_by=cause)],
        )

    # ------------------------------------------------------------------ ledger events

    async def on_customer_upserted(self, env: Envelope[CustomerUpserted]) -> None:
        d = env.data
        values = {"time_zone": d.time_zone, "locale": d.locale, "country": d.country, "consent": d.consent.model_dump()}
        stmt = insert(orm.customers).values(tenant_id=env.tenant_id, customer_id=d.customer_id, **values)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[orm.customers.c.tenant_id, orm.customers.c.customer_id], set_=values
            )
        )

    async def on_invoice_created(self, env: Envelope[InvoiceCreated]) -> None:
        d = env.data
        tenant = env.tenant_id
        stmt = insert(orm.cases).values(
            tenant_id=tenant, invoice_id=d.invoice_id, customer_id=d.customer_id, number=d.number,
            currency=d.currency, total_minor=to_minor(d.total, d.currency),
            balance_minor=to_minor(d.balance, d.currency), due_date=d.due_date, status="open",
        ).on_conflict_do_nothing()  # fmt: skip
        if (await self.session.execute(stmt)).rowcount == 0:
            return
        if d.due_date is None:
            await self._note(tenant, d.customer_id, d.invoice_id, "skipped", "no dunning: the invoice has no due date")
            return
        tz = await self.session.scalar(
            select(orm.customers.c.time_zone).where(
                orm.customers.c.tenant_id == tenant, orm.customers.c.customer_id == d.customer_id
            )
        )
        for step in DEFAULT_POLICY.steps:
            due_at = step_due_at(DEFAULT_POLICY, step, d.due_date, tz or "UTC")
            await self.session.execute(
                orm.timers.insert().values(
                    tenant_id=tenant, customer_id=d.customer_id, invoice_id=d.invoice_id, step_index=step.index,
                    step_name=step.name, due_at=due_at,
                )
            )  # fmt: skip
            await self._note(
                tenant, d.customer_id, d.invoice_id, "scheduled", f"{step.name} scheduled for {due_at.isoformat()}",
                step.name, due_at=due_at.isoformat(),
            )  # fmt: skip

    async def on_allocations(self, env: Envelope[PaymentApplied] | Envelope[CreditNoteApplied]) -> None:
        d = env.data
        for alloc in d.allocations:
            await self.session.execute(
                update(orm.cases)
                .where(orm.cases.c.tenant_id == env.tenant_id, orm.cases.c.invoice_id == alloc.invoice_id)
                .values(balance_minor=to_minor(alloc.invoice_balance_after, d.currency))
            )
            if alloc.invoice_status_after != "open":
                await self._close(env, alloc.invoice_id, "cancelled: the invoice was paid")

    async def on_invoice_voided(self, env: Envelope[InvoiceVoided]) -> None:
        await self._close(env, env.data.invoice_id, f"cancelled: the invoice was {env.data.status.replace('_', ' ')}")

    async def _close(self, env: Envelope[EventData], invoice_id: str, reason: str) -> None:
        tenant = env.tenant_id
        case = (
            await self.session.execute(
                update(orm.cases)
                .where(
                    orm.cases.c.tenant_id == tenant, orm.cases.c.invoice_id == invoice_id, orm.cases.c.status == "open"
                )
                .values(status="closed", closed_reason=reason)
                .returning(orm.cases.c.customer_id)
            )
        ).first()
        if case is None:
            return
        cancelled = (
            await self.session.execute(
                update(orm.timers)
                .where(orm.timers.c.tenant_id == tenant, orm.timers.c.invoice_id == invoice_id,
                       orm.timers.c.status == "pending")
                .values(status="cancelled")
                .returning(orm.timers.c.step_index, orm.timers.c.step_name)
            )
        ).all()  # fmt: skip
        for row in cancelled:
            await self._note(tenant, case.customer_id, invoice_id, "cancelled", reason, row.step_name)
            await self._emit(
                DunningStepCancelled(
                    customer_id=case.customer_id,
                    step_id=step_id(tenant, case.customer_id, invoice_id, DEFAULT_POLICY.policy_id, row.step_index),
                    invoice_ids=[invoice_id],
                    reason=reason,
                ),
                tenant,
                env,
            )

    # ------------------------------------------------------------------ timers

    async def fire_due(self, now: datetime, limit: int) -> int:
        t = orm.timers.c
        due = (
            await self.session.execute(
                select(orm.timers)
                .where(t.status == "pending", t.due_at <= now)
                .order_by(t.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for timer in due:
            await self._fire(timer, now)
        return len(due)

    async def _fire(self, timer: object, now: datetime) -> None:
        tm = timer  # a Row of timers
        c = orm.cases.c
        case = (
            await self.session.execute(
                select(orm.cases).where(c.tenant_id == tm.tenant_id, c.invoice_id == tm.invoice_id)  # type: ignore[attr-defined]
            )
        ).first()
        await self.session.execute(
            update(orm.timers).where(orm.timers.c.id == tm.id).values(status="fired", fired_at=now)  # type: ignore[attr-defined]
        )
        if case is None or case.status != "open" or case.balance_minor <= 0:
            return
        step = DEFAULT_POLICY.steps[tm.step_index]  # type: ignore[attr-defined]
        balance = from_minor(case.balance_minor, case.currency)
        days_overdue = max(0, (now.date() - case.due_date).days) if case.due_date else 0
        sid = step_id(case.tenant_id, case.customer_id, case.invoice_id, DEFAULT_POLICY.policy_id, step.index)
        await self._emit(
            DunningStepDue(
                customer_id=case.customer_id, step_id=sid, policy_id=DEFAULT_POLICY.policy_id,
                policy_version=DEFAULT_POLICY.version, step_index=step.index, step_name=step.name, tone=step.tone,
                template_id=step.template_id, channels=list(step.channels), currency=case.currency,
                amount_due=balance,
                invoices=[StepInvoice(invoice_id=case.invoice_id, number=case.number,
                                      total=from_minor(case.total_minor, case.currency), balance=balance,
                                      due_date=case.due_date, days_overdue=days_overdue)],
                scheduled_for=tm.due_at,  # type: ignore[attr-defined]
                late=(now - tm.due_at).total_seconds() > 3600,  # type: ignore[attr-defined]
            ),
            case.tenant_id,
            None,
        )  # fmt: skip
        await self._note(
            case.tenant_id, case.customer_id, case.invoice_id, "sent", f"{step.name} due: sent to the notifier",
            step.name, step_id=sid, channels=list(step.channels),
        )  # fmt: skip


Handler = Callable[[Engine, Envelope], Awaitable[None]]  # type: ignore[type-arg]

HANDLERS: dict[str, Handler] = {
    "customer.upserted": Engine.on_customer_upserted,
    "invoice.created": Engine.on_invoice_created,
    "payment.applied": Engine.on_allocations,
    "credit_note.applied": Engine.on_allocations,
    "invoice.voided": Engine.on_invoice_voided,
}


async def due_stats(session: AsyncSession, now: datetime) -> tuple[int, float]:
    t = orm.timers.c
    row = (
        await session.execute(
            select(func.count(), func.coalesce(func.extract("epoch", now - func.min(t.due_at)), 0)).where(
                t.status == "pending", t.due_at <= now
            )
        )
    ).one()
    return int(row[0]), float(row[1])


def make_ledger_handler(outbox: OutboxWriter, clock: Clock, group: str):  # type: ignore[no-untyped-def]
    async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        engine = Engine(session, outbox, clock)
        for ev in events:
            handler = HANDLERS.get(ev.type)
            if handler is not None:
                with ev.traced(group):
                    await handler(engine, ev.envelope)

    return apply
