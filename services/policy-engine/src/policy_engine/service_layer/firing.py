"""The durable timer: claim due cases in batches, decide every one set-wise, emit consolidated steps.

One batch is one transaction: the claim (FOR UPDATE SKIP LOCKED, so replicas never take the same case),
the decisions, the updated cases, the timeline and the dunning.step.due and dunning.step.held events (outbox)
commit together or not at all — a crash re-fires the batch, never half of it, and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.money import minor_units
from dunning_events.outbox import OutboxWriter
from dunning_events.tracing import child_trace_headers
from policy_engine.adapters import call_log
from policy_engine.adapters import repository as repo
from policy_engine.adapters.step_events import (
    FeeRow,
    HoldRow,
    OutboxRow,
    StepInvoiceRow,
    step_due_row,
    step_held_row,
)
from policy_engine.domain import cases as rules
from policy_engine.domain.calendar import load_holidays, local_day, missing_holidays
from policy_engine.domain.cases import CapCheck, Case, Debtor, Firing
from policy_engine.domain.conversations import CALL_CHANNELS, NO_CALL_DAYS
from policy_engine.domain.fees import InvoiceFacts, StepFees, days_overdue, step_fees
from policy_engine.domain.policy import ContactCap, Policy
from policy_engine.domain.step_ids import step_id
from policy_engine.service_layer.freshness import stale_tenants
from policy_engine.service_layer.handlers import EngineConfig
from policy_engine.service_layer.policy_book import PolicyBook, load_assignments

_NO_FEES = StepFees([], [], [])  # a step without fee rules (read only)

# Decisions are CPU work on the event loop the consumers share: yield this often so that a payment's
# handler (a few short round trips) is never held up by a whole batch's worth of decisions.
YIELD_EVERY = 100


async def fire_due(
    session: AsyncSession, outbox: OutboxWriter, config: EngineConfig, book: PolicyBook, now: datetime, limit: int
) -> int:
    """Decide one batch of due cases; returns how many were decided (0: nothing due)."""
    apg = await repo.driver(session)
    if not _warm[0]:
        await _warm_calendars(apg, now)
    cases = await repo.claim_due(apg, now, limit)
    if not cases:
        return 0
    keys = {(c.tenant_id, c.customer_id) for c in cases}
    tenants = {c.tenant_id for c in cases}
    debtors = await repo.load_debtors(apg, keys)
    await _load_calendars((d.country for d in debtors.values()), now.year)
    policies = await book.current(apg, tenants)
    stale = await stale_tenants(apg, tenants, now, config.stale_after)
    bound = await bind_policies(apg, cases, debtors, policies)
    caps = await cap_check(apg, cases, bound, now)

    firings: list[Firing] = []
    for n, case in enumerate(cases, start=1):
        debtor = debtors[(case.tenant_id, case.customer_id)]
        firing = rules.decide(case, debtor, bound[id(case)], now, stale.get(case.tenant_id), caps)
        if firing is not None:
            firings.append(firing)
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # let the consumers run: a payment must not wait for a whole batch's CPU

    rows: list[OutboxRow] = []
    for n, group in enumerate(_consolidate(firings), start=1):
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        first = group[0]
        debtor = debtors[(first.case.tenant_id, first.case.customer_id)]
        rows.append(_step_due(group, debtor, now))
        for f in group:
            if f.step.offset_days > 0:
                f.case.went_late = True  # late-payer history (first-time vs chronic) counts these

    rows.extend(_step_held(cases, now))

    await repo.save_cases(apg, cases, repo.TIMER_COLUMNS)
    await repo.write_notes(apg, cases, now)
    await repo.copy_outbox(apg, [r.record() for r in rows])
    if rows:
        wake = getattr(outbox, "_on_commit", None)  # the relay's wake-up after commit, as OutboxWriter.add does
        if wake is not None:
            session.info.setdefault("after_commit", []).append(wake)
    return len(cases)


_warm = [False]  # per process


async def _warm_calendars(apg: asyncpg.Connection, now: datetime) -> None:
    """On the timer's first round (before anything is due, usually): load the holiday calendars of every
    country the customers are in, in a worker thread. Loading one imports a module (~100 ms of CPU); done on
    the event loop the first time a case needs it, it would stall every payment's cancellation behind it."""
    _warm[0] = True
    countries = [r["country"] for r in await apg.fetch("SELECT DISTINCT country FROM customers")]
    await _load_calendars(countries, now.year)


async def _load_calendars(countries: Iterable[str | None], year: int) -> None:
    """Load the holiday calendars not loaded yet, in a worker thread (see _warm_calendars)."""
    missing = missing_holidays(countries, year)
    if missing:
        await asyncio.to_thread(load_holidays, missing, year)


async def bind_policies(
    apg: asyncpg.Connection,
    cases: list[Case],
    debtors: dict[tuple[str, str], Debtor],
    policies: dict[str, dict[str, Policy]],
) -> dict[int, Policy]:
    """Each case's policy: its bound one at the current version, or — when flagged for re-planning or its
    policy was retired — the one that resolves now (assignment, applicability, default)."""
    bound: dict[int, Policy] = {}
    unresolved: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        tenant_policies = policies[case.tenant_id]
        if case.replan or case.policy_id not in tenant_policies:
            unresolved[case.tenant_id].append(case)
        else:
            bound[id(case)] = tenant_policies[case.policy_id]
    for tenant, group in unresolved.items():
        ds = await repo.with_late_history(apg, [debtors[(tenant, c.customer_id)] for c in group], tenant)
        assignments = await load_assignments(apg, tenant, [d.customer_id for d in ds], [d.segment for d in ds])
        for case, debtor in zip(group, ds, strict=True):
            bound[id(case)], _ = rules.resolve_policy(debtor, case, policies[tenant], assignments)
    return bound


async def cap_check(
    apg: asyncpg.Connection, cases: list[Case], bound: dict[int, Policy], now: datetime, channel: str | None = None
) -> CapCheck:
    """Load the contact attempts the batch's capped channels need (none when no pending step uses one); with
    `channel`, those of that one channel instead of the pending steps' (a collector's one-off reminder)."""
    channels: set[str] = set()
    longest = 0
    calls = False
    for case in cases:
        policy = bound[id(case)]
        wanted: Iterable[str] = (channel,) if channel is not None else ()
        if channel is None:
            step = policy.step_by_name.get(case.next_step or "")
            if step is None:
                continue
            wanted = step.channels
        for ch in wanted:
            calls = calls or ch in CALL_CHANNELS
            for cap in policy.cap_by_channel.get(ch, ()):
                channels.add(ch)
                longest = max(longest, cap.per_days)
    attempts: dict[tuple[str, str, str], list[tuple[str, str, datetime]]] = defaultdict(list)
    if channels:
        rows = await repo.contact_attempts(
            apg, {(c.tenant_id, c.customer_id) for c in cases}, channels, now - timedelta(days=longest)
        )
        for r in rows:
            attempts[(r["tenant_id"], r["customer_id"], r["channel"])].append(
                (r["invoice_id"], r["delivery_id"], r["at"])
            )

    def count(case: Case, cap: ContactCap) -> tuple[int, datetime | None]:
        since = now - timedelta(days=cap.per_days)
        rows = [a for a in attempts.get((case.tenant_id, case.customer_id, cap.channel), ()) if a[2] > since]
        if cap.per == "debt":
            rows = [a for a in rows if a[0] == case.invoice_id]
        deliveries: dict[str, datetime] = {}
        for _inv, delivery, at in rows:
            deliveries[delivery] = at
        return len(deliveries), (min(deliveries.values()) if deliveries else None)

    talks: dict[tuple[str, str], datetime] = {}
    if calls:  # only a batch with a call pending reads the conversations (Reg F's 7 days)
        since = now - timedelta(days=NO_CALL_DAYS)
        for r in await call_log.conversations_since(apg, {(c.tenant_id, c.customer_id) for c in cases}, since, now):
            key = (r["tenant_id"], r["invoice_id"])
            talks[key] = max(talks.get(key, r["at"]), r["at"])

    def conversation(case: Case) -> datetime | None:
        return talks.get((case.tenant_id, case.invoice_id))

    return CapCheck(count, conversation)


def _consolidate(firings: Iterable[Firing]) -> list[list[Firing]]:
    """One message per customer, step and currency (and channel set, so a capped channel never reaches a
    debt it must not); per invoice when the policy says so."""
    groups: dict[tuple[Any, ...], list[Firing]] = defaultdict(list)
    for f in firings:
        c = f.case
        key: tuple[Any, ...] = (c.tenant_id, c.customer_id, c.currency, f.policy.id, f.policy.version, f.step.name,
                                tuple(f.channels))  # fmt: skip
        if f.policy.doc.consolidation == "per_invoice":
            key += (c.invoice_id,)
        groups[key].append(f)
    return list(groups.values())


def _step_held(cases: Iterable[Case], now: datetime) -> list[OutboxRow]:
    """One dunning.step.held per customer and held step (its invoices consolidated, as the step's message is),
    from the holds the decisions collected: no query, and nothing at all in a batch that held nothing."""
    groups: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for case in cases:
        if not case.holds:
            continue
        for hold in case.holds:
            key = (case.tenant_id, case.customer_id, hold.policy_id, hold.step, hold.channels, hold.sent, hold.moved_to)
            groups[key].append(case.invoice_id)
        case.holds.clear()
    return [
        step_held_row(
            tenant_id=tenant,
            customer_id=customer,
            step_name=step,
            policy_id=policy_id,
            invoice_ids=sorted(invoice_ids),
            held=[HoldRow(h.channel, h.rule, h.reason) for h in held],
            sent=sent,
            moved_to=moved_to,
            occurred_at=now,
        )
        for (tenant, customer, policy_id, step, held, sent, moved_to), invoice_ids in groups.items()
    ]


def _next_step(group: list[Firing]) -> tuple[str, datetime] | None:
    """The step planned after this one: the earliest of the group's cases' (they share a policy and a step)."""
    best: tuple[str, datetime] | None = None
    for f in group:
        name, at = f.case.next_step, f.case.next_at
        if name is not None and at is not None and (best is None or at < best[1]):
            best = (name, at)
    return best


def _invoice_id(f: Firing) -> str:
    return f.case.invoice_id


def _step_due(group: list[Firing], debtor: Debtor, now: datetime) -> OutboxRow:
    first = group[0]
    case, step, policy = first.case, first.step, first.policy
    tenant, currency = case.tenant_id, case.currency
    if len(group) > 1:
        group.sort(key=_invoice_id)
    sid = step_id(tenant, case.customer_id, policy.id, step.name, currency, [f.case.invoice_id for f in group])
    today = local_day(rules.window(policy, debtor), now)  # days overdue as the debtor counts them
    units = minor_units(currency)
    balances = [f.case.balance for f in group]
    if step.fees:
        facts = [
            InvoiceFacts(f.case.invoice_id, f.case.number, bal, f.case.due_date, f.case.in_default,
                         f.case.compensation_charged)
            for f, bal in zip(group, balances, strict=True)
        ]  # fmt: skip
        fees = step_fees(step, facts, currency, today, debtor.country)
    else:
        fees = _NO_FEES
    invoices = []
    for f, bal in zip(group, balances, strict=True):
        c = f.case
        invoices.append(StepInvoiceRow(c.invoice_id, c.number, Decimal(c.total_minor).scaleb(-units), bal,
                                       c.due_date, days_overdue(c.due_date, today)))  # fmt: skip
        if c.invoice_id in fees.compensation_for:
            c.compensation_charged = True
        mine = [
            {"kind": line.kind, "description": line.description, "amount": f"{line.amount} {currency}"}
            for line in fees.lines
            if line.invoice_id in (None, c.invoice_id)
        ] if fees.lines else []  # fmt: skip
        rules.mark_sent(f, debtor, now, sid, mine, fees.waived)
    # The decision continues the trace of the event that opened the case (the invoice's arrival, days ago);
    # the event carries it on, so one trace runs from the ERP to the notifier's send. The span is started and
    # ended at once (it stamps one record): no context switch per group.
    parent = {"traceparent": case.trace} if case.trace else None
    headers = child_trace_headers(f"policy-engine decide {step.name}", parent, **{"dunning.step_id": sid})
    return step_due_row(
        headers=headers,
        tenant_id=tenant,
        customer_id=case.customer_id,
        step_id=sid,
        policy_id=policy.id,
        policy_version=policy.version,
        step_index=policy.index_of[step.name],
        step_name=step.name,
        tone=step.tone,
        template_id=step.template_id,
        channels=first.channels,
        channel_mode=step.channel_mode,
        currency=currency,
        amount_due=sum(balances, Decimal(0)),
        invoices=invoices,
        fees=[FeeRow(line.kind, line.description, line.amount, currency) for line in fees.lines],
        actions=list(step.actions),
        scheduled_for=min(f.case.planned_at or now for f in group),
        late=any(f.late_by is not None for f in group),
        deliver_until=min(f.deliver_until for f in group),
        deliver_from=max(f.deliver_from for f in group),
        next_step=_next_step(group),
        occurred_at=now,
    )


async def due_stats(session: AsyncSession, now: datetime) -> tuple[int, float]:
    apg = await repo.driver(session)
    row = await apg.fetchrow(
        "SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM $1::timestamptz - min(next_at)), 0)::float8 AS oldest "
        "FROM cases WHERE next_at <= $1",
        now,
    )
    return int(row["n"]), float(row["oldest"])
