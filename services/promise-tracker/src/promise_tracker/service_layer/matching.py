"""What happens when a ledger event arrives: the invoice/customer projections, and payments, credit
notes and reversals matched to the promises that cover their invoices. The HANDLERS table (at the end, keyed by
the events' data classes) is the index.
"""

from __future__ import annotations

from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import case, func, null, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.consumer import ConsumedEvent
from dunning_events.envelope import Envelope
from dunning_events.events import (
    Allocation,
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
from dunning_events.outbox import OutboxWriter
from dunning_events.tables import supersedes_sql
from promise_tracker.adapters import orm
from promise_tracker.domain.plans import spread_over_instalments
from promise_tracker.domain.promises import counts_toward
from promise_tracker.service_layer import erasure
from promise_tracker.service_layer.outcomes import Outcomes, Resolution, lock_timers


class UnknownInvoice(Exception):
    """A ledger event names an invoice this service never saw: not applicable, so it is dead-lettered."""


class Matcher:
    def __init__(self, session: AsyncSession, outbox: OutboxWriter, now: datetime) -> None:
        self.session = session
        self.outcomes = Outcomes(session, outbox, now)

    # ------------------------------------------------------------------ projections

    async def on_customer_upserted(self, env: Envelope[CustomerUpserted]) -> None:
        d = env.data
        cu = orm.customers
        values = {"name": d.name, "time_zone": d.time_zone, "locale": d.locale}
        stmt = insert(cu).values(tenant_id=env.tenant_id, customer_id=d.customer_id, **values)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[cu.c.tenant_id, cu.c.customer_id],
                set_=values,
                where=cu.c.erased_at.is_(None),  # an erased customer keeps its pseudonym, whatever a sync says
            )
        )

    async def on_customer_erased(self, env: Envelope[CustomerErased]) -> None:
        await erasure.on_customer_erased(self.session, env)

    async def on_invoice(
        self, env: Envelope[InvoiceCreated] | Envelope[InvoiceUpdated] | Envelope[InvoiceVoided]
    ) -> bool:
        """The invoice as it is now; False (nothing changed) for a snapshot older than the one applied."""
        d = env.data
        t = orm.invoices
        values = {
            "customer_id": d.customer_id,
            "number": d.number,
            "currency": d.currency,
            "total_minor": to_minor(d.total, d.currency),
            "balance_minor": to_minor(d.balance, d.currency),
            "status": d.status,
            "due_date": d.due_date,
        }
        owed = d.status == "open" and d.balance > 0
        stmt = insert(t).values(
            tenant_id=env.tenant_id, invoice_id=d.invoice_id, settled_at=None if owed else env.occurred_at,
            ledger_version=d.version, **values,
        )  # fmt: skip
        applied = await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.c.tenant_id, t.c.invoice_id],
                set_={
                    **values,
                    "settled_at": _settled_at(owed, env.occurred_at),
                    "ledger_version": func.greatest(t.c.ledger_version, d.version),
                },
                where=newer_than_applied(d.version),  # an older snapshot (a replayed dead letter) changes nothing
            ).returning(t.c.invoice_id)
        )
        return applied.first() is not None

    async def on_invoice_voided(self, env: Envelope[InvoiceVoided]) -> None:
        """Nothing is owed on a voided invoice any more: whatever promise or plan covers it is withdrawn."""
        if not await self.on_invoice(env):
            return  # an older void than what was applied since (a write-off undone by a reversal, replayed)
        holder = await self._holder(env.tenant_id, env.data.invoice_id)
        if holder is None:
            return
        reason = f"invoice {env.data.number} was {env.data.status.replace('_', ' ')}"
        kind, holder_id = holder
        if kind == "plan":
            plan = await self._plan(env.tenant_id, holder_id)
            await self.outcomes.cancel_plan(plan, reason, env)
        else:
            row = await self._promise(env.tenant_id, holder_id)
            await self.outcomes.resolve([Resolution(row, "cancelled", row.received_minor, reason)], env)

    # ------------------------------------------------------------------ money in

    async def on_payment_applied(self, env: Envelope[PaymentApplied]) -> None:
        await self._money_in(env, "payment", env.data.payment_id, env.data.received_on, env.data.allocations)

    async def on_credit_note_applied(self, env: Envelope[CreditNoteApplied]) -> None:
        await self._money_in(env, "credit_note", env.data.credit_note_id, env.data.issued_on, env.data.allocations)

    async def _money_in(
        self,
        env: Envelope[Any],
        kind: str,
        source_id: str,
        business_date: date,
        allocations: list[Allocation],
    ) -> None:
        currency = env.data.currency
        touched: dict[str, Any] = {}  # promise_id -> row with the up-to-date received_minor
        tz = await self._time_zone(env.tenant_id, env.data.customer_id)
        for alloc in allocations:
            await self._apply_balance(env, alloc, currency)
            holder = await self._holder(env.tenant_id, alloc.invoice_id)
            if holder is None:
                continue
            candidates = await self._active_promises(env.tenant_id, holder)
            eligible = {
                row.promise_id
                for row in candidates
                if counts_toward(
                    occurred_at=env.occurred_at, business_date=business_date, promise_created_at=row.created_at,
                    deadline=row.deadline, time_zone=tz,
                )
            }  # fmt: skip
            rows = [touched.get(r.promise_id) or _mutable(r) for r in candidates]
            needs = [(r.amount_minor - r.received_minor) if r.promise_id in eligible else 0 for r in rows]
            amount = to_minor(alloc.amount, currency)
            # One promise takes the whole allocation; a plan's instalments take it in order.
            shares = [amount if r.promise_id in eligible else 0 for r in rows] if holder[0] == "promise" else (
                spread_over_instalments(amount, needs)
            )  # fmt: skip
            for row, share in zip(rows, shares, strict=True):
                if share <= 0:
                    continue
                await self._receipt(env, row, kind, source_id, alloc.invoice_id, share)
                row.received_minor += share
                touched[row.promise_id] = row
        await self._store_received(touched.values())
        kept = [
            Resolution(row, "kept", row.received_minor)
            for row in touched.values()
            if row.received_minor >= row.amount_minor
        ]
        await self.outcomes.resolve(kept, env)

    async def on_payment_reversed(self, env: Envelope[PaymentReversed]) -> None:
        """Undo what a reversed payment counted toward promises still standing (latest instalment first).
        A promise already kept stays kept: the policy engine sees the invoice open again on its own."""
        d = env.data
        touched: dict[str, Any] = {}
        for alloc in d.allocations:
            await self._apply_balance(env, alloc, d.currency)
            r = orm.receipts.c
            counted = dict(
                (
                    await self.session.execute(
                        select(r.promise_id, func.sum(r.amount_minor))
                        .where(
                            r.tenant_id == env.tenant_id, r.source_id == d.payment_id, r.invoice_id == alloc.invoice_id
                        )
                        .group_by(r.promise_id)
                    )
                ).all()
            )
            p = orm.promises.c
            standing = (
                await self.session.execute(
                    select(orm.promises)
                    .where(p.tenant_id == env.tenant_id, p.promise_id.in_(list(counted)), p.status == "active")
                    .order_by(p.instalment_index.desc().nulls_last())
                    .with_for_update()
                )
            ).all()
            to_undo = to_minor(alloc.amount, d.currency)
            for row in standing:
                current = touched.get(row.promise_id) or _mutable(row)
                take = min(to_undo, int(counted[row.promise_id]))
                if take <= 0:
                    continue
                await self._receipt(env, current, "reversal", d.payment_id, alloc.invoice_id, -take)
                current.received_minor -= take
                touched[row.promise_id] = current
                to_undo -= take
        await self._store_received(touched.values())

    # ------------------------------------------------------------------ helpers

    async def _apply_balance(self, env: Envelope[Any], alloc: Allocation, currency: str) -> None:
        i = orm.invoices.c
        tenant_id = env.tenant_id
        owed = alloc.invoice_status_after == "open" and alloc.invoice_balance_after > 0
        version = alloc.invoice_version_after
        newer = newer_than_applied(version)
        found = (
            await self.session.execute(
                update(orm.invoices)
                .where(i.tenant_id == tenant_id, i.invoice_id == alloc.invoice_id)
                .values(  # the money still counts; the balance only when it is newer than the one applied
                    balance_minor=case((newer, to_minor(alloc.invoice_balance_after, currency)), else_=i.balance_minor),
                    status=case((newer, alloc.invoice_status_after), else_=i.status),
                    settled_at=case((newer, _settled_at(owed, env.occurred_at)), else_=i.settled_at),
                    ledger_version=func.greatest(i.ledger_version, version),
                )
                .returning(i.invoice_id)
            )
        ).first()
        if found is None:
            raise UnknownInvoice(f"allocations.invoice_id: unknown invoice {alloc.invoice_id!r} for tenant {tenant_id}")

    async def _holder(self, tenant_id: str, invoice_id: str) -> tuple[str, str] | None:
        c = orm.commitments.c
        row = (
            await self.session.execute(
                select(c.holder_kind, c.holder_id).where(c.tenant_id == tenant_id, c.invoice_id == invoice_id)
            )
        ).first()
        return None if row is None else (row.holder_kind, row.holder_id)

    async def _active_promises(self, tenant_id: str, holder: tuple[str, str]) -> list[Any]:
        p = orm.promises.c
        kind, holder_id = holder
        match = p.plan_id == holder_id if kind == "plan" else p.promise_id == holder_id
        if kind == "plan":
            await lock_timers(self.session, tenant_id, plan_id=holder_id)
        else:
            await lock_timers(self.session, tenant_id, promise_id=holder_id)
        return list(
            (
                await self.session.execute(
                    select(orm.promises)
                    .where(p.tenant_id == tenant_id, match, p.status == "active")
                    .order_by(p.instalment_index)
                    .with_for_update()
                )
            ).all()
        )

    async def _promise(self, tenant_id: str, promise_id: str) -> Any:
        p = orm.promises.c
        await lock_timers(self.session, tenant_id, promise_id=promise_id)
        return (
            await self.session.execute(
                select(orm.promises).where(p.tenant_id == tenant_id, p.promise_id == promise_id).with_for_update()
            )
        ).one()

    async def _plan(self, tenant_id: str, plan_id: str) -> Any:
        pl = orm.plans.c
        await lock_timers(self.session, tenant_id, plan_id=plan_id)
        return (
            await self.session.execute(
                select(orm.plans).where(pl.tenant_id == tenant_id, pl.plan_id == plan_id).with_for_update()
            )
        ).one()

    async def _time_zone(self, tenant_id: str, customer_id: str) -> str:
        cu = orm.customers.c
        tz = await self.session.scalar(
            select(cu.time_zone).where(cu.tenant_id == tenant_id, cu.customer_id == customer_id)
        )
        return tz or "UTC"

    async def _receipt(
        self, env: Envelope[Any], row: Any, kind: str, source_id: str, invoice_id: str, amount_minor: int
    ) -> None:
        await self.session.execute(
            orm.receipts.insert().values(
                tenant_id=env.tenant_id, promise_id=row.promise_id, source_kind=kind, source_id=source_id,
                invoice_id=invoice_id, amount_minor=amount_minor, occurred_at=env.occurred_at,
            )
        )  # fmt: skip

    async def _store_received(self, rows: Any) -> None:
        p = orm.promises.c
        for row in rows:
            await self.session.execute(
                update(orm.promises)
                .where(p.tenant_id == row.tenant_id, p.promise_id == row.promise_id)
                .values(received_minor=row.received_minor)
            )


def newer_than_applied(version: int) -> Any:
    """The fact at `version` is newer than the projection's row (dunning_events.tables.supersedes_sql)."""
    return supersedes_sql(version, orm.invoices.c.ledger_version)


def _settled_at(owed: bool, occurred_at: datetime) -> Any:
    """Keep the first moment an invoice was settled; clear it when a balance opens again."""
    return null() if owed else func.coalesce(orm.invoices.c.settled_at, occurred_at)


def _mutable(row: Any) -> SimpleNamespace:
    """A promises row whose received amount can be updated while one event is applied."""
    return SimpleNamespace(**row._asdict())


# The index of what promise-tracker does with the ledger, keyed by the events' data classes.
HANDLERS: HandlerTable[Matcher] = HandlerTable(
    on(CustomerUpserted, Matcher.on_customer_upserted),
    on(CustomerErased, Matcher.on_customer_erased),
    on(InvoiceCreated, Matcher.on_invoice),
    on(InvoiceUpdated, Matcher.on_invoice),
    on(InvoiceVoided, Matcher.on_invoice_voided),
    on(PaymentApplied, Matcher.on_payment_applied),
    on(CreditNoteApplied, Matcher.on_credit_note_applied),
    on(PaymentReversed, Matcher.on_payment_reversed),
)


async def flush_outcomes(matcher: Matcher, events: list[ConsumedEvent]) -> None:
    """After a batch: the promises' outcomes it decided, written set-wise."""
    await matcher.outcomes.flush()
