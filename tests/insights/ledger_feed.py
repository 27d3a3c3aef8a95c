"""How the synthetic ledger is fed to the real services, as a plan (pure: no services here, so a cheap test can
replay it against the ledger's rules).

The services date some facts by the clock (a void, a write-off, a reversal, a dispute, a promise recorded), so
the clock has to walk forward through the 18 months and stop on each day such a fact happens. Everything dated
by the facts themselves goes in as early as it may, in bulk: the invoices by one CSV import, the credit notes,
then one CSV of every payment nothing clock-dated has to come before. A payment is *deferred* to the first
stop on or after its date when its invoice has a promise or plan (promise-tracker counts only money that arrives
after the promise was recorded, and by its deadline) or a bounced payment (the replacement can only be
allocated once the reversal has reopened the invoice); so is every payment sharing an invoice with a deferred
one, so each invoice's facts still arrive in date order (insights counts open invoices from the order it
learns balances in).

Waits: before a stop that records promises (promise-tracker must have seen the invoices and their balances),
and after a stop on a promised date whose money came in time (promise-tracker must count it before the clock
passes the deadline and its timer judges the promise).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from tests.insights.synthetic_ledger import (
    Closure,
    CreditNote,
    Dispute,
    Payment,
    Plan,
    Promise,
    Reversal,
    SyntheticLedger,
    clock_instant,
)


@dataclass
class Stop:
    at: datetime  # the clock's instant for everything of this stop
    payments: list[Payment] = field(default_factory=list)  # deferred ones dated on or before this day, first
    reversals: list[Reversal] = field(default_factory=list)
    closures: list[Closure] = field(default_factory=list)
    disputes_opened: list[Dispute] = field(default_factory=list)
    disputes_resolved: list[Dispute] = field(default_factory=list)
    promises: list[Promise] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    quiet_first: bool = False
    quiet_after: bool = False

    @property
    def day(self) -> date:
        return self.at.date()


@dataclass
class FeedPlan:
    start: datetime  # where the clock stands for the bulk part
    upfront_payments: list[Payment]
    credit_notes: list[CreditNote]
    stops: list[Stop]
    final: datetime  # past every deadline and its settle window: promise-tracker has judged every promise


def plan_feed(ledger: SyntheticLedger) -> FeedPlan:
    promised_invoices = {i for p in ledger.all_promises() for i in p.invoice_ids}
    payment_of = {p.payment_id: p for p in ledger.payments}
    bounced_invoices = {a.invoice_id for r in ledger.reversals for a in payment_of[r.payment_id].allocations}
    deferred_invoices = promised_invoices | bounced_invoices
    deferred: set[str] = set()
    grown = True
    while grown:  # every payment sharing an invoice with a deferred one is deferred too
        grown = False
        for p in ledger.payments:
            if p.payment_id not in deferred and any(a.invoice_id in deferred_invoices for a in p.allocations):
                deferred.add(p.payment_id)
                deferred_invoices |= {a.invoice_id for a in p.allocations}
                grown = True
    stops: dict[date, Stop] = {}

    def stop(day: date) -> Stop:
        return stops.setdefault(day, Stop(clock_instant(day)))

    for r in ledger.reversals:
        stop(r.at.date()).reversals.append(r)
    for c in ledger.closures:
        stop(c.at.date()).closures.append(c)
    for d in ledger.disputes:
        stop(d.opened_at.date()).disputes_opened.append(d)
        if d.resolved_at is not None:
            stop(d.resolved_at.date()).disputes_resolved.append(d)
    for pr in ledger.promises:
        s = stop(pr.created_at.date())
        s.promises.append(pr)
        s.quiet_first = True
    for plan in ledger.plans:
        s = stop(plan.created_at.date())
        s.plans.append(plan)
        s.quiet_first = True
    for pr in ledger.all_promises():
        if pr.received > 0:
            stop(pr.promised_date).quiet_after = True
    stop(ledger.end)
    days = sorted(stops)
    for p in ledger.payments:
        if p.payment_id in deferred:
            stops[next(d for d in days if d >= p.received_on)].payments.append(p)
    upfront = [p for p in ledger.payments if p.payment_id not in deferred]
    start = clock_instant(ledger.start) - timedelta(hours=12)
    final = clock_instant(ledger.end + timedelta(days=2))
    return FeedPlan(start, upfront, sorted(ledger.credit_notes, key=lambda c: (c.issued_on, c.credit_note_id)),
                    [stops[d] for d in days], final)  # fmt: skip


# ---------------------------------------------------------------------------------------------- CSV files


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def customers_csv(ledger: SyntheticLedger) -> bytes:
    return _csv(["id", "name", "segment"], [[c.customer_id, c.name, c.segment] for c in ledger.customers])


def invoices_csv(ledger: SyntheticLedger) -> bytes:
    return _csv(
        ["id", "customer_id", "number", "currency", "total", "issue_date", "due_date", "terms"],
        [[i.invoice_id, i.customer_id, i.number, i.currency, str(i.total), i.issue_date.isoformat(),
          i.due_date.isoformat() if i.due_date else "", i.terms or ""] for i in ledger.invoices],
    )  # fmt: skip


def payments_csv(payments: list[Payment]) -> bytes:
    return _csv(
        ["id", "customer_id", "currency", "amount", "received_on", "allocations"],
        [[p.payment_id, p.customer_id, p.currency, str(p.amount), p.received_on.isoformat(),
          "|".join(f"{a.invoice_id}:{a.amount}" for a in p.allocations)] for p in payments],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- replay


class FeedRefused(AssertionError):
    pass


def replay(ledger: SyntheticLedger, plan: FeedPlan) -> dict[str, Decimal]:
    """Apply the plan in its order with the ledger's rules (allocations within the balance, nothing after a
    close, a void only of an untouched invoice, a reversal of a live payment, a promise only on an open
    invoice nobody else promised) and insights' need (each invoice's facts arrive in date order); returns the
    final balances. Raises FeedRefused at the first fact the services would refuse or misorder."""
    balance = {i.invoice_id: i.total for i in ledger.invoices}
    touched: set[str] = set()
    closed: set[str] = set()
    disputed: set[str] = set()
    promised: set[str] = set()
    last_date: dict[str, date] = {i.invoice_id: i.issue_date for i in ledger.invoices}
    payment_of = {p.payment_id: p for p in ledger.payments}
    applied: set[str] = set()
    reversed_ids: set[str] = set()

    def dated(invoice_id: str, on: date, what: str) -> None:
        if on < last_date[invoice_id]:
            raise FeedRefused(f"{what}: {invoice_id} learns a fact of {on} after one of {last_date[invoice_id]}")
        last_date[invoice_id] = on

    def settle(doc: str, allocations: tuple, on: date) -> None:  # type: ignore[type-arg]
        for a in allocations:
            if a.invoice_id in closed or a.amount > balance[a.invoice_id] or a.amount <= 0:
                raise FeedRefused(
                    f"{doc}: {a} against balance {balance[a.invoice_id]} (closed: {a.invoice_id in closed})"
                )
            dated(a.invoice_id, on, doc)
            balance[a.invoice_id] -= a.amount
            touched.add(a.invoice_id)

    for cn in plan.credit_notes:
        settle(cn.credit_note_id, cn.allocations, cn.issued_on)
    for p in plan.upfront_payments:
        settle(p.payment_id, p.allocations, p.received_on)
        applied.add(p.payment_id)
    for s in plan.stops:
        for p in s.payments:
            if p.received_on > s.day:
                raise FeedRefused(f"{p.payment_id} imported before its day")
            settle(p.payment_id, p.allocations, p.received_on)
            applied.add(p.payment_id)
        for r in s.reversals:
            if r.payment_id not in applied or r.payment_id in reversed_ids:
                raise FeedRefused(f"reversal of {r.payment_id} before the payment, or twice")
            reversed_ids.add(r.payment_id)
            for a in payment_of[r.payment_id].allocations:
                dated(a.invoice_id, s.day, "reversal")
                balance[a.invoice_id] += a.amount
        for c in s.closures:
            if c.invoice_id in closed or (c.status == "void" and c.invoice_id in touched):
                raise FeedRefused(f"{c.status} of {c.invoice_id}: closed before or (void) paid")
            if c.amount != balance[c.invoice_id]:
                raise FeedRefused(f"{c.status} of {c.invoice_id}: cancels {c.amount}, balance {balance[c.invoice_id]}")
            dated(c.invoice_id, s.day, c.status)
            closed.add(c.invoice_id)
            balance[c.invoice_id] = Decimal(0)
        for d in s.disputes_opened:
            if d.invoice_id in disputed:
                raise FeedRefused(f"dispute on {d.invoice_id} opened twice")
            disputed.add(d.invoice_id)
        for d in s.disputes_resolved:
            if d.invoice_id not in disputed:
                raise FeedRefused(f"dispute on {d.invoice_id} resolved before it opened")
            disputed.discard(d.invoice_id)
        for pr in s.promises + [plan.instalments[0] for plan in s.plans]:
            for invoice_id in pr.invoice_ids:
                if invoice_id in closed or invoice_id in promised or balance[invoice_id] <= 0:
                    raise FeedRefused(f"{pr.key} on {invoice_id}: not open, or promised already")
                promised.add(invoice_id)
            if pr.plan_key is None and pr.amount > sum(balance[i] for i in pr.invoice_ids):
                raise FeedRefused(f"{pr.key} promises more than is owed")
    return balance


def stop_counts(plan: FeedPlan) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for s in plan.stops:
        counts["stops"] += 1
        counts["deferred_payments"] += len(s.payments)
        counts["clock_facts"] += len(s.reversals) + len(s.closures) + len(s.disputes_opened) + len(s.disputes_resolved)
        counts["quiet_waits"] += s.quiet_first + s.quiet_after
    return dict(counts)
