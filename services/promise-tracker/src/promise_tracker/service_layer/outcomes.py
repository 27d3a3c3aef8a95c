"""How promises end: kept, partially kept, broken or cancelled, and what that does to their plan.

Everything is set-wise (one statement per kind of change for a whole batch), because the deadline
timer resolves thousands of promises per transaction. Events are written to the outbox in the order a
consumer must see them: for a defaulting plan the remaining instalments are cancelled first, then the
missed one is reported broken, then plan.defaulted, so a consumer that re-escalates on promise.broken
"when nothing else stands" sees nothing else standing.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, String, Text, bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.bulk import ArrayInsert, raw_connection
from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    PlanCompleted,
    PlanDefaulted,
    PromiseBroken,
    PromiseCancelled,
    PromiseKept,
)
from dunning_events.money import from_minor
from dunning_events.outbox import OutboxWriter
from promise_tracker.adapters import orm
from promise_tracker.domain.plans import on_missed_instalment
from promise_tracker.domain.promises import Verdict

SOURCE = "promise-tracker"


@functools.cache
def _envelope_of(model: type[EventData]) -> type[Envelope[Any]]:
    return Envelope[model]  # type: ignore[valid-type]


# Set-wise statements over arrays (one round trip and one cached plan per batch, whatever its size).
_END_PROMISES = text(
    "UPDATE promises AS p SET status = u.status, received_minor = u.received, resolved_at = :now, reason = u.reason "
    "FROM unnest(:tenants, :ids, :statuses, :received, :reasons) AS u(tenant_id, promise_id, status, received, reason) "
    "WHERE p.tenant_id = u.tenant_id AND p.promise_id = u.promise_id AND p.status = 'active'"
).bindparams(
    bindparam("tenants", type_=ARRAY(String)),
    bindparam("ids", type_=ARRAY(String)),
    bindparam("statuses", type_=ARRAY(String)),
    bindparam("received", type_=ARRAY(BigInteger)),
    bindparam("reasons", type_=ARRAY(Text)),
    bindparam("now", type_=DateTime(timezone=True)),
)
_STOP_TIMERS = text(
    "DELETE FROM deadline_timers AS t USING unnest(:tenants, :ids) AS u(tenant_id, promise_id) "
    "WHERE t.tenant_id = u.tenant_id AND t.promise_id = u.promise_id"
).bindparams(bindparam("tenants", type_=ARRAY(String)), bindparam("ids", type_=ARRAY(String)))
_RELEASE_PROMISE_INVOICES = text(
    "DELETE FROM commitments AS c USING unnest(:tenants, :ids) AS u(tenant_id, holder_id) "
    "WHERE c.tenant_id = u.tenant_id AND c.holder_id = u.holder_id AND c.holder_kind = 'promise'"
).bindparams(bindparam("tenants", type_=ARRAY(String)), bindparam("ids", type_=ARRAY(String)))
_COUNT_PER_CUSTOMER = ArrayInsert(
    "customers",
    [("tenant_id", "text"), ("customer_id", "text"), ("kept_promise_count", "int4"), ("broken_promise_count", "int4")],
    tail="ON CONFLICT (tenant_id, customer_id) DO UPDATE SET "
    "kept_promise_count = customers.kept_promise_count + EXCLUDED.kept_promise_count, "
    "broken_promise_count = customers.broken_promise_count + EXCLUDED.broken_promise_count "
    "RETURNING tenant_id, customer_id, broken_promise_count",
)

Ending = Verdict | str  # "kept" | "partially_kept" | "broken" | "cancelled"


@dataclass
class Resolution:
    """One promise ending. `row` is a promises row (or anything with its columns)."""

    row: Any
    ending: Ending
    received_minor: int
    reason: str | None = None


async def lock_timers(
    session: AsyncSession, tenant_id: str, *, promise_id: str | None = None, plan_id: str | None = None
) -> None:
    """Lock the deadline timers of the promises about to be changed, before the promises themselves.

    The deadline timer locks a timer and then its promise; taking them in the same order here means a
    payment or a cancellation racing a deadline waits for the check instead of deadlocking with it.
    """
    t, p = orm.deadline_timers.c, orm.promises.c
    match = p.promise_id == promise_id if promise_id is not None else p.plan_id == plan_id
    await session.execute(
        select(t.promise_id)
        .join(orm.promises, (p.tenant_id == t.tenant_id) & (p.promise_id == t.promise_id))
        .where(t.tenant_id == tenant_id, match)
        .order_by(t.promise_id)
        .with_for_update(of=orm.deadline_timers)
    )  # fmt: skip


class Outcomes:
    def __init__(self, session: AsyncSession, outbox: OutboxWriter, now: datetime) -> None:
        self.session = session
        self.outbox = outbox
        self.now = now
        self._events: list[Envelope[EventData]] = []

    def emit(self, data: EventData, tenant_id: str, cause: Envelope[Any] | None = None) -> None:
        self._events.append(new_event(data, tenant_id=tenant_id, source=SOURCE, occurred_at=self.now, caused_by=cause))

    def emit_built(
        self, model: type[EventData], tenant_id: str, cause: Envelope[EventData] | None, **fields: Any
    ) -> None:
        """Like emit, for payloads this service assembled from its own rows (already the right types):
        skips re-validation, which is most of an event's cost when the deadline timer writes thousands."""
        data = model.model_construct(**fields)
        correlation = cause.correlation_id if cause is not None else uuid.uuid4()
        self._events.append(
            _envelope_of(model).model_construct(
                id=uuid.uuid4(), type=model.event_type, schema_version=model.schema_version, source=SOURCE,
                occurred_at=self.now, tenant_id=tenant_id, subject=data.subject(), correlation_id=correlation,
                causation_id=cause.id if cause is not None else None, data=data,
            )
        )  # fmt: skip

    async def flush(self) -> None:
        await self.outbox.add(self.session, self._events)
        self._events = []

    # ------------------------------------------------------------------ ending promises

    async def resolve(self, resolutions: Sequence[Resolution], cause: Envelope[Any] | None = None) -> None:
        """Record the endings, adjust customer counters, release invoices, emit events, settle plans.
        (The deadline timer does all but the plans in its own statement; see deadlines.py.)"""
        if not resolutions:
            return
        await self._record_endings(resolutions)
        await self._after_endings(resolutions, cause)

    async def _record_endings(self, resolutions: Sequence[Resolution]) -> None:
        await self.session.execute(
            _END_PROMISES,
            {
                "tenants": [r.row.tenant_id for r in resolutions],
                "ids": [r.row.promise_id for r in resolutions],
                "statuses": [r.ending for r in resolutions],
                "received": [r.received_minor for r in resolutions],
                "reasons": [r.reason for r in resolutions],
                "now": self.now,
            },
        )
        await self._stop_timers([r.row for r in resolutions])

    async def _stop_timers(self, rows: Sequence[Any]) -> None:
        """A promise that ended before its deadline needs no check any more."""
        await self.session.execute(
            _STOP_TIMERS, {"tenants": [r.tenant_id for r in rows], "ids": [r.promise_id for r in rows]}
        )

    async def _after_endings(self, resolutions: Sequence[Resolution], cause: Envelope[EventData] | None) -> None:
        standalone = [r.row for r in resolutions if r.row.plan_id is None]
        if standalone:
            await self.session.execute(
                _RELEASE_PROMISE_INVOICES,
                {"tenants": [r.tenant_id for r in standalone], "ids": [r.promise_id for r in standalone]},
            )
        broken_counts = await self._count(resolutions)
        for r in resolutions:
            if r.row.plan_id is None:
                self._emit_ending(r, broken_counts, cause)
        await self.settle_plans([r for r in resolutions if r.row.plan_id is not None], broken_counts, cause)

    async def settle_plans(
        self,
        instalments: Sequence[Resolution],
        broken_counts: dict[tuple[str, str], int],
        cause: Envelope[Any] | None = None,
    ) -> None:
        """Emit the endings of recorded and counted instalments, plan by plan, with what they do to the plan.
        `broken_counts`: (tenant, promise) -> the customer's running broken-promise count."""
        by_plan: dict[tuple[str, str], list[Resolution]] = defaultdict(list)
        for r in instalments:
            by_plan[(r.row.tenant_id, r.row.plan_id)].append(r)
        for (tenant_id, plan_id), plan_resolutions in by_plan.items():
            await self._settle_plan(tenant_id, plan_id, plan_resolutions, broken_counts, cause)

    async def _count(self, resolutions: Sequence[Resolution]) -> dict[tuple[str, str], int]:
        """Bump kept/broken counters per customer; return each broken promise's running count."""
        per_customer: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for r in resolutions:
            key = (r.row.tenant_id, r.row.customer_id)
            if r.ending == "kept":
                per_customer[key][0] += 1
            elif r.ending in ("broken", "partially_kept"):
                per_customer[key][1] += 1
        if not per_customer:
            return {}
        keys = list(per_customer)
        arrays = (
            [t for t, _ in keys],
            [c for _, c in keys],
            [per_customer[k][0] for k in keys],
            [per_customer[k][1] for k in keys],
        )
        counted = await _COUNT_PER_CUSTOMER.fetch(await raw_connection(self.session), arrays)
        totals = {(row[0], row[1]): row[2] for row in counted}
        # Number the batch's broken promises per customer in deadline order, ending at the new total.
        running: dict[tuple[str, str], int] = {k: totals[k] - v[1] for k, v in per_customer.items()}
        counts: dict[tuple[str, str], int] = {}
        for r in sorted(resolutions, key=lambda r: r.row.deadline):
            if r.ending in ("broken", "partially_kept"):
                key = (r.row.tenant_id, r.row.customer_id)
                running[key] += 1
                counts[(r.row.tenant_id, r.row.promise_id)] = running[key]
        return counts

    def _emit_ending(
        self, r: Resolution, broken_counts: dict[tuple[str, str], int], cause: Envelope[EventData] | None
    ) -> None:
        row = r.row
        common = {"customer_id": row.customer_id, "promise_id": row.promise_id, "invoice_ids": list(row.invoice_ids)}
        if r.ending == "cancelled":
            self.emit(PromiseCancelled(**common, reason=r.reason, plan_id=row.plan_id), row.tenant_id, cause)
            return
        amount = from_minor(row.amount_minor, row.currency)
        received = from_minor(r.received_minor, row.currency)
        if r.ending == "kept":
            self.emit_built(
                PromiseKept, row.tenant_id, cause,
                **common, currency=row.currency, amount=amount, received=received, plan_id=row.plan_id,
            )  # fmt: skip
            return
        self.emit_built(
            PromiseBroken, row.tenant_id, cause,
            **common,
            currency=row.currency,
            amount=amount,
            received=received,
            shortfall=from_minor(row.amount_minor - max(r.received_minor, 0), row.currency),
            partially_kept=r.ending == "partially_kept",
            deadline=row.deadline,
            broken_promise_count=broken_counts[(row.tenant_id, row.promise_id)],
            plan_id=row.plan_id,
        )  # fmt: skip

    # ------------------------------------------------------------------ plans

    async def _settle_plan(
        self,
        tenant_id: str,
        plan_id: str,
        ended: list[Resolution],
        broken_counts: dict[tuple[str, str], int],
        cause: Envelope[EventData] | None,
    ) -> None:
        pl = orm.plans
        plan = (
            await self.session.execute(
                select(pl).where(pl.c.tenant_id == tenant_id, pl.c.plan_id == plan_id).with_for_update()
            )
        ).first()
        if plan is None or plan.status != "active":
            for r in ended:
                self._emit_ending(r, broken_counts, cause)
            return
        strikes, defaulted = plan.strikes, False
        for r in sorted(ended, key=lambda r: r.row.instalment_index):
            if r.ending in ("broken", "partially_kept"):
                decision = on_missed_instalment(plan.on_missed, strikes, plan.max_strikes)
                strikes, defaulted = decision.strikes, decision.defaulted
                if defaulted:
                    break
        if defaulted:
            reason = "instalment missed" if plan.on_missed == "cancel" else f"{strikes} instalments missed"
            await self._cancel_active_instalments(tenant_id, plan_id, f"plan defaulted: {reason}", cause)
            for r in ended:
                self._emit_ending(r, broken_counts, cause)
            await self._end_plan(plan, "defaulted", reason, strikes)
            self.emit(
                PlanDefaulted(
                    customer_id=plan.customer_id, plan_id=plan_id, invoice_ids=list(plan.invoice_ids),
                    reason=reason, strikes=strikes,
                ),
                tenant_id,
                cause,
            )  # fmt: skip
            return
        for r in ended:
            self._emit_ending(r, broken_counts, cause)
        p = orm.promises.c
        still_active = await self.session.scalar(
            select(p.promise_id).where(p.tenant_id == tenant_id, p.plan_id == plan_id, p.status == "active").limit(1)
        )
        if still_active is None:
            await self._end_plan(plan, "completed", None, strikes)
            self.emit(
                PlanCompleted(customer_id=plan.customer_id, plan_id=plan_id, invoice_ids=list(plan.invoice_ids)),
                tenant_id,
                cause,
            )
        elif strikes != plan.strikes:
            await self.session.execute(
                update(pl).where(pl.c.tenant_id == tenant_id, pl.c.plan_id == plan_id).values(strikes=strikes)
            )

    async def _end_plan(self, plan: Any, status: str, reason: str | None, strikes: int) -> None:
        pl = orm.plans.c
        await self.session.execute(
            update(orm.plans)
            .where(pl.tenant_id == plan.tenant_id, pl.plan_id == plan.plan_id)
            .values(status=status, reason=reason, strikes=strikes, resolved_at=self.now)
        )
        c = orm.commitments.c
        await self.session.execute(
            delete(orm.commitments).where(
                c.tenant_id == plan.tenant_id, c.holder_kind == "plan", c.holder_id == plan.plan_id
            )
        )

    async def _cancel_active_instalments(
        self, tenant_id: str, plan_id: str, reason: str, cause: Envelope[EventData] | None
    ) -> int:
        p = orm.promises
        rows = (
            await self.session.execute(
                update(p)
                .where(p.c.tenant_id == tenant_id, p.c.plan_id == plan_id, p.c.status == "active")
                .values(status="cancelled", resolved_at=self.now, reason=reason)
                .returning(p)
            )
        ).all()
        if rows:
            await self._stop_timers(rows)
        for row in sorted(rows, key=lambda r: r.instalment_index):
            self._emit_ending(Resolution(row, "cancelled", row.received_minor, reason), {}, cause)
        return len(rows)

    async def cancel_plan(self, plan: Any, reason: str, cause: Envelope[Any] | None = None) -> None:
        """Withdraw a plan: its open instalments are cancelled (dunning resumes), the plan ends cancelled."""
        await self._cancel_active_instalments(plan.tenant_id, plan.plan_id, reason, cause)
        await self._end_plan(plan, "cancelled", reason, plan.strikes)
