"""Recording and withdrawing promises and payment plans (collector API and customer self-service).

Each command runs in the caller's transaction: the promise, the invoice commitments and the events
are written together or not at all. The covered invoices are locked first, so two concurrent requests
for the same invoice serialise and the second one sees the first one's commitment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import Instalment, PlanCreated, PromiseCreated
from dunning_events.money import from_minor
from dunning_events.outbox import OutboxWriter
from promise_tracker.adapters import orm
from promise_tracker.domain.plans import Interval, instalment_dates, split_balance
from promise_tracker.domain.promises import (
    CoveredInvoice,
    FieldError,
    PromiseRejected,
    check_at_for,
    deadline_for,
    local_today,
    validate_promise,
)
from promise_tracker.domain.rules import PromiseRules
from promise_tracker.service_layer.erasure import is_erased
from promise_tracker.service_layer.outcomes import Outcomes, Resolution, lock_timers
from promise_tracker.service_layer.rules import load_rules


class NotFound(Exception):
    pass


class NotActive(Exception):
    """The promise or plan already ended (or belongs to a plan and must be cancelled with it)."""


@dataclass(frozen=True)
class NewPromise:
    customer_id: str
    invoice_ids: list[str]
    amount_minor: int
    currency: str
    promised_date: date
    recorded_by: str
    note: str | None = None


@dataclass(frozen=True)
class NewPlan:
    customer_id: str
    invoice_ids: list[str]
    currency: str
    total_minor: int | None  # None: the covered invoices' whole open balance
    instalment_count: int
    first_due_date: date
    interval: Interval
    recorded_by: str
    note: str | None = None


class PromiseBook:
    def __init__(
        self,
        session: AsyncSession,
        outbox: OutboxWriter,
        now: datetime,
        tenant_id: str,
        defaults: PromiseRules,
        settle_seconds: float,
    ) -> None:
        self.session = session
        self.outbox = outbox
        self.now = now
        self.tenant_id = tenant_id
        self.defaults = defaults
        self.settle_seconds = settle_seconds

    # ------------------------------------------------------------------ reading what a command needs

    async def _lock_invoices(self, invoice_ids: list[str]) -> dict[str, CoveredInvoice]:
        i = orm.invoices.c
        rows = (
            await self.session.execute(
                select(orm.invoices)
                .where(i.tenant_id == self.tenant_id, i.invoice_id.in_(invoice_ids))
                .order_by(i.invoice_id)  # one lock order: concurrent requests cannot deadlock
                .with_for_update()
            )
        ).all()
        return {
            r.invoice_id: CoveredInvoice(r.invoice_id, r.customer_id, r.currency, r.balance_minor, r.status)
            for r in rows
        }

    async def _committed(self, invoice_ids: list[str]) -> set[str]:
        c = orm.commitments.c
        rows = await self.session.execute(
            select(c.invoice_id).where(c.tenant_id == self.tenant_id, c.invoice_id.in_(invoice_ids))
        )
        return {r.invoice_id for r in rows}

    async def _refuse_erased(self, customer_id: str) -> None:
        """An erased customer is not dunned any more: a promise or plan (an old self-service link) is refused."""
        if await is_erased(self.session, self.tenant_id, customer_id):
            raise PromiseRejected.one("customer_id", "the customer's personal data was erased: dunning has stopped")

    async def time_zone(self, customer_id: str) -> str:
        cu = orm.customers.c
        tz = await self.session.scalar(
            select(cu.time_zone).where(cu.tenant_id == self.tenant_id, cu.customer_id == customer_id)
        )
        return tz or "UTC"

    # ------------------------------------------------------------------ promises

    async def record_promise(self, new: NewPromise) -> dict[str, Any]:
        rules = await load_rules(self.session, self.tenant_id, self.defaults)
        await self._refuse_erased(new.customer_id)
        invoices = await self._lock_invoices(new.invoice_ids)
        tz = await self.time_zone(new.customer_id)
        validate_promise(
            customer_id=new.customer_id,
            invoice_ids=new.invoice_ids,
            invoices=invoices,
            currency=new.currency,
            amount_minor=new.amount_minor,
            promised_date=new.promised_date,
            today=local_today(self.now, tz),
            rules=rules,
            already_committed=await self._committed(new.invoice_ids),
        )
        promise = self._promise_values(new, tz, rules.grace_days)
        await self.session.execute(orm.promises.insert().values(**promise))
        await self._start_timers([promise])
        await self._commit_invoices(new.invoice_ids, "promise", promise["promise_id"])
        await self.outbox.add(self.session, [self._created_event(promise)])
        return promise

    def _promise_values(
        self,
        new: NewPromise,
        tz: str,
        grace_days: int,
        plan_id: str | None = None,
        instalment_index: int | None = None,
    ) -> dict[str, Any]:
        deadline = deadline_for(new.promised_date, tz, grace_days)
        return {
            "tenant_id": self.tenant_id,
            "promise_id": str(uuid.uuid4()),
            "customer_id": new.customer_id,
            "invoice_ids": list(new.invoice_ids),
            "currency": new.currency,
            "amount_minor": new.amount_minor,
            "received_minor": 0,
            "promised_date": new.promised_date,
            "deadline": deadline,
            "recorded_by": new.recorded_by,
            "note": new.note,
            "plan_id": plan_id,
            "instalment_index": instalment_index,
            "status": "active",
            "created_at": self.now,
        }

    def _created_event(self, promise: dict[str, Any]) -> Envelope[EventData]:
        data = PromiseCreated(
            customer_id=promise["customer_id"],
            promise_id=promise["promise_id"],
            invoice_ids=promise["invoice_ids"],
            currency=promise["currency"],
            amount=from_minor(promise["amount_minor"], promise["currency"]),
            promised_date=promise["promised_date"],
            deadline=promise["deadline"],
            recorded_by=promise["recorded_by"],
            plan_id=promise["plan_id"],
            note=promise["note"],
        )
        return new_event(data, tenant_id=self.tenant_id, source="promise-tracker", occurred_at=self.now)

    async def _start_timers(self, promises: list[dict[str, Any]]) -> None:
        await self.session.execute(
            orm.deadline_timers.insert(),
            [
                {
                    "tenant_id": self.tenant_id,
                    "promise_id": p["promise_id"],
                    "check_at": check_at_for(p["deadline"], self.settle_seconds),
                }
                for p in promises
            ],
        )

    async def _commit_invoices(self, invoice_ids: list[str], kind: str, holder_id: str) -> None:
        await self.session.execute(
            orm.commitments.insert(),
            [
                {"tenant_id": self.tenant_id, "invoice_id": inv, "holder_kind": kind, "holder_id": holder_id}
                for inv in invoice_ids
            ],
        )

    async def cancel_promise(self, promise_id: str, reason: str | None) -> None:
        p = orm.promises.c
        await lock_timers(self.session, self.tenant_id, promise_id=promise_id)
        row = (
            await self.session.execute(
                select(orm.promises).where(p.tenant_id == self.tenant_id, p.promise_id == promise_id).with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(promise_id)
        if row.status != "active":
            raise NotActive(f"the promise is already {row.status}")
        if row.plan_id is not None:
            raise NotActive(f"the promise is an instalment of plan {row.plan_id}: cancel the plan")
        outcomes = Outcomes(self.session, self.outbox, self.now)
        await outcomes.resolve([Resolution(row, "cancelled", row.received_minor, reason or "withdrawn")])
        await outcomes.flush()

    # ------------------------------------------------------------------ plans

    async def create_plan(self, new: NewPlan) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rules = await load_rules(self.session, self.tenant_id, self.defaults)
        await self._refuse_erased(new.customer_id)
        invoices = await self._lock_invoices(new.invoice_ids)
        tz = await self.time_zone(new.customer_id)
        open_balance = sum(inv.balance_minor for i, inv in invoices.items() if i in new.invoice_ids)
        total = new.total_minor if new.total_minor is not None else open_balance
        errors: list[FieldError] = []
        if new.instalment_count < 1 or new.instalment_count > rules.plan_max_instalments:
            errors.append(FieldError("instalment_count", f"must be between 1 and {rules.plan_max_instalments}"))
        elif 0 < total < new.instalment_count:
            errors.append(FieldError("total", "too small to give every instalment at least one minor unit"))
        try:
            validate_promise(
                customer_id=new.customer_id,
                invoice_ids=new.invoice_ids,
                invoices=invoices,
                currency=new.currency,
                amount_minor=total,
                promised_date=new.first_due_date,
                today=local_today(self.now, tz),
                rules=rules,
                already_committed=await self._committed(new.invoice_ids),
                amount_field="total",
                date_field="first_due_date",
            )
        except PromiseRejected as exc:
            errors = exc.errors + errors
        if errors:
            raise PromiseRejected(errors)

        plan_id = str(uuid.uuid4())
        amounts = split_balance(total, new.instalment_count)
        dates = instalment_dates(new.first_due_date, new.instalment_count, new.interval)
        plan = {
            "tenant_id": self.tenant_id, "plan_id": plan_id, "customer_id": new.customer_id,
            "invoice_ids": list(new.invoice_ids), "currency": new.currency, "total_minor": total,
            "instalment_count": new.instalment_count, "interval": new.interval, "recorded_by": new.recorded_by,
            "note": new.note, "on_missed": rules.plan_on_missed, "max_strikes": rules.plan_max_strikes,
            "strikes": 0, "status": "active", "created_at": self.now,
        }  # fmt: skip
        instalments = [
            self._promise_values(
                NewPromise(new.customer_id, new.invoice_ids, amount, new.currency, day, new.recorded_by, new.note),
                tz,
                rules.grace_days,
                plan_id=plan_id,
                instalment_index=k,
            )
            for k, (amount, day) in enumerate(zip(amounts, dates, strict=True))
        ]
        await self.session.execute(orm.plans.insert().values(**plan))
        await self.session.execute(orm.promises.insert(), instalments)
        await self._start_timers(instalments)
        await self._commit_invoices(new.invoice_ids, "plan", plan_id)

        created = PlanCreated(
            customer_id=new.customer_id,
            plan_id=plan_id,
            invoice_ids=list(new.invoice_ids),
            currency=new.currency,
            total=from_minor(total, new.currency),
            instalments=[
                Instalment(
                    promise_id=i["promise_id"],
                    due_date=i["promised_date"],
                    amount=from_minor(i["amount_minor"], new.currency),
                )
                for i in instalments
            ],
        )
        events: list[Envelope[EventData]] = [
            new_event(created, tenant_id=self.tenant_id, source="promise-tracker", occurred_at=self.now)
        ]
        events += [self._created_event(i) for i in instalments]
        await self.outbox.add(self.session, events)
        return plan, instalments

    async def cancel_plan(self, plan_id: str, reason: str | None) -> None:
        pl = orm.plans.c
        await lock_timers(self.session, self.tenant_id, plan_id=plan_id)
        plan = (
            await self.session.execute(
                select(orm.plans).where(pl.tenant_id == self.tenant_id, pl.plan_id == plan_id).with_for_update()
            )
        ).first()
        if plan is None:
            raise NotFound(plan_id)
        if plan.status != "active":
            raise NotActive(f"the plan is already {plan.status}")
        outcomes = Outcomes(self.session, self.outbox, self.now)
        await outcomes.cancel_plan(plan, reason or "withdrawn")
        await outcomes.flush()
