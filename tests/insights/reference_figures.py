"""The reference computation of insights' ledger and promise figures: plain Python over the synthetic ledger's
records (no SQL, nothing from insights), written straight from the formulas of the issue-15 contract, so the
service's set-wise SQL has something independent to be compared with.

An invoice's life is a list of dated changes of its balance (the contract's facts):
  issue     +total                        at its issue date
  payment   -allocation                   at the payment's received_on (a reversed payment's too)
  reversal  +allocation                   at the UTC date of the reversal
  credit    -allocation                   at the credit note's issued_on
  void / write_off  -(balance just before) at the UTC date of the void / write-off
Balance as of D = the sum of its changes dated on or before D. AR(D) = Σ balances as of D; CurrentAR(D) = the part
of invoices with due_date ≥ D (due_date = the due date, or the issue date when there is none); Sales[a, b] = Σ
totals of invoices issued in [a, b] that are not void (a void invoice was never a sale); days = b − a + 1.
Every figure is per currency; `segment` keeps the customers of that segment. Values are exact Decimals, unrounded:
the comparison rounds them as the API serves them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from tests.insights.synthetic_ledger import Invoice, Promise, SyntheticLedger

ChangeKind = Literal["issue", "payment", "reversal", "credit", "void", "write_off"]
BUCKETS = ("current", "1-30", "31-60", "61-90", "91+")
COUNTBACK_MONTHS = 36
ZERO = Decimal(0)


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    on: date
    amount: Decimal  # signed: + raises the balance


@dataclass(frozen=True)
class Bucket:
    amount: Decimal
    count: int


@dataclass(frozen=True)
class Dso:
    ar: Decimal
    credit_sales: Decimal
    days: int
    dso_standard: Decimal | None  # None when there were no credit sales
    dso_countback: Decimal | None
    best_possible_dso: Decimal | None
    add: Decimal | None


@dataclass(frozen=True)
class Collection:
    collected: Decimal
    due: Decimal
    collection_rate: Decimal | None  # None when nothing fell due
    overdue: Decimal
    written_off: Decimal
    disputed: Decimal


@dataclass(frozen=True)
class PromiseFigures:
    made: int
    kept: int
    broken: int  # every broken promise, the partially kept ones included
    partially_kept: int
    cancelled: int
    open: int
    kept_rate: Decimal | None  # kept / (kept + broken); None when none ended either way
    amount_promised: Decimal
    amount_received: Decimal  # Σ received of the kept and the broken ones
    plans_created: int
    plans_completed: int
    plans_defaulted: int
    plans_active: int
    plans_amount: Decimal  # Σ total of the plans


def bucket_of(as_of: date, due_date: date) -> str:
    late = (as_of - due_date).days
    if late <= 0:
        return "current"
    if late <= 30:
        return "1-30"
    if late <= 60:
        return "31-60"
    if late <= 90:
        return "61-90"
    return "91+"


def month_windows(to: date) -> Iterator[tuple[date, date]]:
    """Countback's windows: [first of to's month, to], then whole calendar months back."""
    first = to.replace(day=1)
    yield first, to
    for _ in range(COUNTBACK_MONTHS - 1):
        last = first - timedelta(days=1)
        first = last.replace(day=1)
        yield first, last


def intervals(period_from: date, period_to: date, interval: Literal["day", "week", "month"]) -> list[tuple[date, date]]:
    """The series' intervals in [from, to]: days, Monday-Sunday weeks or calendar months, the first and last clipped."""
    out: list[tuple[date, date]] = []
    start = period_from
    while start <= period_to:
        if interval == "day":
            end = start
        elif interval == "week":
            end = start + timedelta(days=6 - start.weekday())
        else:
            end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        end = min(end, period_to)
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


class ReferenceBook:
    """The synthetic ledger's invoices with their dated changes; every figure is a method."""

    def __init__(self, ledger: SyntheticLedger) -> None:
        self.ledger = ledger
        self.segment_of = {c.customer_id: c.segment for c in ledger.customers}
        self.changes: dict[str, list[Change]] = {
            i.invoice_id: [Change("issue", i.issue_date, i.total)] for i in ledger.invoices
        }
        self.void = {c.invoice_id for c in ledger.closures if c.status == "void"}
        self._sales: dict[tuple[str, str | None], tuple[list[date], list[Decimal]]] = {}
        allocations = {p.payment_id: p.allocations for p in ledger.payments}
        for p in ledger.payments:
            for a in p.allocations:
                self.changes[a.invoice_id].append(Change("payment", p.received_on, -a.amount))
        for r in ledger.reversals:
            for a in allocations[r.payment_id]:
                self.changes[a.invoice_id].append(Change("reversal", _utc_date(r.at), a.amount))
        for cn in ledger.credit_notes:
            for a in cn.allocations:
                self.changes[a.invoice_id].append(Change("credit", cn.issued_on, -a.amount))
        for closure in ledger.closures:
            # The balance just before, as the ledger knew it: every change dated up to that day (payments and
            # credits of the day come before the day's clock facts).
            day = _utc_date(closure.at)
            before = sum((c.amount for c in self.changes[closure.invoice_id] if c.on <= day), ZERO)
            kind: ChangeKind = "void" if closure.status == "void" else "write_off"
            self.changes[closure.invoice_id].append(Change(kind, day, -before))
        self.disputes: dict[str, list[tuple[datetime, datetime | None]]] = {d.invoice_id: [] for d in ledger.disputes}
        for d in ledger.disputes:
            self.disputes[d.invoice_id].append((d.opened_at, d.resolved_at))

    # ------------------------------------------------------------------ building blocks

    def invoices(self, currency: str, segment: str | None = None) -> Iterator[Invoice]:
        for inv in self.ledger.invoices:
            if inv.currency == currency and (segment is None or self.segment_of[inv.customer_id] == segment):
                yield inv

    def balance(self, invoice_id: str, as_of: date) -> Decimal:
        return sum((c.amount for c in self.changes[invoice_id] if c.on <= as_of), ZERO)

    def ar(self, as_of: date, currency: str, segment: str | None = None) -> Decimal:
        return sum((self.balance(i.invoice_id, as_of) for i in self.invoices(currency, segment)), ZERO)

    def current_ar(self, as_of: date, currency: str, segment: str | None = None) -> Decimal:
        return sum(
            (self.balance(i.invoice_id, as_of) for i in self.invoices(currency, segment) if i.aging_due_date >= as_of),
            ZERO,
        )

    def sales(self, first: date, last: date, currency: str, segment: str | None = None) -> Decimal:
        """Σ totals of the invoices not void issued in [first, last] (by running sums: countback asks often)."""
        key = (currency, segment)
        if key not in self._sales:
            sold = sorted(
                (i.issue_date, i.total) for i in self.invoices(currency, segment) if i.invoice_id not in self.void
            )
            running, sums = ZERO, [ZERO]
            for _, total in sold:
                running += total
                sums.append(running)
            self._sales[key] = ([d for d, _ in sold], sums)
        dates, sums = self._sales[key]
        return sums[bisect_right(dates, last)] - sums[bisect_left(dates, first)]

    def currencies(self) -> list[str]:
        return sorted({i.currency for i in self.ledger.invoices})

    # ------------------------------------------------------------------ figures

    def aging(self, as_of: date, currency: str, segment: str | None = None) -> dict[str, Bucket]:
        """Open invoices (balance ≠ 0 as of D) by days past due: amount and count per bucket (every bucket)."""
        amount = dict.fromkeys(BUCKETS, ZERO)
        count = dict.fromkeys(BUCKETS, 0)
        for inv in self.invoices(currency, segment):
            balance = self.balance(inv.invoice_id, as_of)
            if balance != 0:
                bucket = bucket_of(as_of, inv.aging_due_date)
                amount[bucket] += balance
                count[bucket] += 1
        return {b: Bucket(amount[b], count[b]) for b in BUCKETS}

    def dso(self, period_from: date, period_to: date, currency: str, segment: str | None = None) -> Dso:
        ar = self.ar(period_to, currency, segment)
        sales = self.sales(period_from, period_to, currency, segment)
        days = (period_to - period_from).days + 1
        countback = self.countback(ar, period_to, currency, segment)
        if sales == 0:
            return Dso(ar, sales, days, None, countback, None, None)
        standard = ar / sales * days
        best = self.current_ar(period_to, currency, segment) / sales * days
        return Dso(ar, sales, days, standard, countback, best, standard - best)

    def countback(self, ar: Decimal, to: date, currency: str, segment: str | None = None) -> Decimal | None:
        """Walk calendar months back from `to` (36 windows at most): while what is left of AR(to) covers a
        window's sales, take them and add the window's days; at the first window it does not cover, add the
        fraction left / its sales × its days; the walk also ends when nothing is left. AR left after every
        window counts as all their days; AR ≤ 0 is 0 days; unknown (None) when no window had sales. It does not depend on the period's own sales."""
        windows = [
            (self.sales(first, last, currency, segment), (last - first).days + 1) for first, last in month_windows(to)
        ]
        if all(sales == 0 for sales, _ in windows):
            return None
        remaining, total_days = ar, Decimal(0)
        for sales, days in windows:
            if remaining <= 0:  # everything owed is accounted for: the walk ends
                break
            if remaining >= sales:
                remaining -= sales
                total_days += days
            else:
                return total_days + remaining / sales * days
        return total_days

    def cei(self, period_from: date, period_to: date, currency: str, segment: str | None = None) -> Decimal | None:
        """(AR(from−1) + Sales − AR(to)) / (AR(from−1) + Sales − CurrentAR(to)) × 100."""
        opening = self.ar(period_from - timedelta(days=1), currency, segment)
        sales = self.sales(period_from, period_to, currency, segment)
        collectible = opening + sales - self.current_ar(period_to, currency, segment)
        if collectible == 0:
            return None
        return (opening + sales - self.ar(period_to, currency, segment)) / collectible * 100

    def collection(self, period_from: date, period_to: date, currency: str, segment: str | None = None) -> Collection:
        collected = due = written_off = disputed = ZERO
        ar = current = ZERO
        for inv in self.invoices(currency, segment):
            changes = self.changes[inv.invoice_id]
            due_in_period = period_from <= inv.aging_due_date <= period_to
            for c in changes:
                if period_from <= c.on <= period_to:
                    if due_in_period and c.kind in ("payment", "reversal", "credit"):
                        collected -= c.amount
                    if c.kind == "write_off":
                        written_off -= c.amount
            if due_in_period and inv.invoice_id not in self.void:
                due += inv.total
            balance = self.balance(inv.invoice_id, period_to)
            ar += balance
            if inv.aging_due_date >= period_to:
                current += balance
            if self.in_dispute_at_end_of(inv.invoice_id, period_to):
                disputed += balance
        rate = None if due == 0 else collected / due
        return Collection(collected, due, rate, ar - current, written_off, disputed)

    def in_dispute_at_end_of(self, invoice_id: str, day: date) -> bool:
        return any(
            _utc_date(opened) <= day and (resolved is None or _utc_date(resolved) > day)
            for opened, resolved in self.disputes.get(invoice_id, ())
        )

    def promises(self, period_from: date, period_to: date, currency: str, segment: str | None = None,
                 *, with_instalments: bool = False) -> PromiseFigures:  # fmt: skip
        """Of the promises recorded in the period: how they ended and the money; of the plans recorded in the
        period: how they stand. A plan's instalments are promises at promise-tracker, but they count in the plan
        columns only (figures-activity's decision), unless `with_instalments`."""

        def wanted(customer_id: str, cur: str, at: datetime) -> bool:
            return (cur == currency and period_from <= _utc_date(at) <= period_to
                    and (segment is None or self.segment_of[customer_id] == segment))  # fmt: skip

        chosen: Iterable[Promise] = self.ledger.all_promises() if with_instalments else self.ledger.promises
        made = [p for p in chosen if wanted(p.customer_id, p.currency, p.created_at)]
        kept = sum(p.outcome == "kept" for p in made)
        partial = sum(p.outcome == "partially_kept" for p in made)
        broken = sum(p.outcome == "broken" for p in made) + partial
        plans = [p for p in self.ledger.plans if wanted(p.customer_id, p.currency, p.created_at)]
        return PromiseFigures(
            made=len(made), kept=kept, broken=broken, partially_kept=partial,
            cancelled=sum(p.outcome == "cancelled" for p in made), open=sum(p.outcome == "open" for p in made),
            kept_rate=None if kept + broken == 0 else Decimal(kept) / (kept + broken),
            amount_promised=sum((p.amount for p in made), ZERO),
            amount_received=sum((p.received for p in made if p.outcome != "cancelled" and p.outcome != "open"), ZERO),
            plans_created=len(plans), plans_completed=sum(p.outcome == "completed" for p in plans),
            plans_defaulted=sum(p.outcome == "defaulted" for p in plans),
            plans_active=sum(p.outcome == "active" for p in plans),
            plans_amount=sum((p.total for p in plans), ZERO),
        )  # fmt: skip


def _utc_date(instant: datetime) -> date:
    return instant.astimezone(UTC).date()
