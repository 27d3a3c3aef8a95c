"""A seeded synthetic accounts-receivable ledger: customers in several segments and currencies, 18 months of
invoices with the lives real ones have (paid on time or late, in parts, several at once by one payment run,
credited, voided, written off, disputed, a bounced payment, promises to pay kept and broken, payment plans).

Plain dataclasses with Decimal money and dates: the reference figures (reference_figures.py) read them directly,
the end-to-end test feeds them through the real services. Everything comes from `random.Random(seed)`, so a seed
is a ledger.

Facts that the platform dates by its clock (a void, a write-off, a reversal, a dispute opened or resolved, a
promise or plan recorded) carry the instant the feeder must put on the clock: noon UTC of their day (`CLOCK_HOUR`),
so their UTC date is never in doubt. Payments and credit notes carry their own business dates.

What the generator guarantees, so the services accept every fact in the feeder's order (payments and credits of a
day first, then that day's clock facts): an allocation never exceeds the invoice's balance at that point, a
payment is never dated before its invoice, a voided invoice had no payments or credits, nothing touches an
invoice after it is closed, a reversed payment pays a single invoice in full and its replacement comes later, and
an invoice under a promise or a plan gets no payment the promise does not plan for.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

CURRENCY_EXPONENTS = {"EUR": 2, "USD": 2, "GBP": 2, "JPY": 0}
CURRENCY_WEIGHTS = (("EUR", 45), ("USD", 30), ("GBP", 15), ("JPY", 10))
SEGMENTS = ("enterprise", "mid_market", "smb", "public_sector")
# Mean days paid after the due date, and its spread, per segment (public bodies pay late and steadily).
LATENESS = {"enterprise": (12, 10), "mid_market": (6, 12), "smb": (15, 20), "public_sector": (25, 12)}
TERMS = (("net30", 30), ("net45", 45), ("net60", 60), ("net14", 14))
CLOCK_HOUR = time(12, 0, tzinfo=UTC)
PROMISE_DAY = 5  # promises and plans are recorded on the 5th of a month (the feeder waits for quiet only then)
PROMISE_OFFSET = 14  # promised for the 19th (each deadline day costs the feeder a wait)
PLAN_FIRST_DUE = 7  # a plan's instalments fall on the 12th
PLAN_INSTALMENTS = 3

ClosureStatus = Literal["void", "written_off"]
PromiseOutcome = Literal["kept", "partially_kept", "broken", "cancelled", "open"]
PlanOutcome = Literal["completed", "defaulted", "active"]


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-CURRENCY_EXPONENTS[currency])


def from_minor(units: int, currency: str) -> Decimal:
    return Decimal(units).scaleb(-CURRENCY_EXPONENTS[currency])


def to_minor(amount: Decimal, currency: str) -> int:
    return int(amount.scaleb(CURRENCY_EXPONENTS[currency]))


def clock_instant(day: date) -> datetime:
    """The instant the feeder puts on the clock for a clock-dated fact of `day`."""
    return datetime.combine(day, CLOCK_HOUR)


def desk_day(day: date) -> date:
    """The first Tuesday or Thursday on or after `day`: the back office voids, writes off, handles disputes and
    bounced payments on those days (so the feeder stops the clock on few days)."""
    while day.weekday() not in (1, 3):
        day += timedelta(days=1)
    return day


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    segment: str
    currency: str  # every invoice of a customer is in its currency


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    customer_id: str
    number: str
    currency: str
    total: Decimal
    issue_date: date
    due_date: date | None  # None: due on issue (aging counts from the issue date)
    terms: str | None

    @property
    def aging_due_date(self) -> date:
        return self.due_date or self.issue_date


@dataclass(frozen=True)
class Allocation:
    invoice_id: str
    amount: Decimal


@dataclass(frozen=True)
class Payment:
    payment_id: str
    customer_id: str
    currency: str
    amount: Decimal  # may exceed the allocations: the rest is unapplied credit
    received_on: date
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True)
class CreditNote:
    credit_note_id: str
    customer_id: str
    currency: str
    total: Decimal
    issued_on: date
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True)
class Reversal:
    payment_id: str
    at: datetime  # the clock instant of `POST /v1/payments/{id}/reverse`


@dataclass(frozen=True)
class Closure:
    invoice_id: str
    status: ClosureStatus
    at: datetime  # the clock instant of the void / write-off
    amount: Decimal  # the balance it cancelled (the balance just before)


@dataclass(frozen=True)
class Dispute:
    invoice_id: str
    opened_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class Promise:
    key: str  # the generator's name for it (promise-tracker gives its own id)
    customer_id: str
    invoice_ids: tuple[str, ...]
    currency: str
    amount: Decimal
    created_at: datetime
    promised_date: date
    outcome: PromiseOutcome  # as promise-tracker judges it once the clock has passed every deadline
    received: Decimal  # what counted toward it by its deadline
    plan_key: str | None = None


@dataclass(frozen=True)
class Plan:
    key: str
    customer_id: str
    invoice_ids: tuple[str, ...]
    currency: str
    total: Decimal
    first_due_date: date
    created_at: datetime
    outcome: PlanOutcome
    instalments: tuple[Promise, ...]  # each instalment is a promise (promise.created with the plan's id)


@dataclass
class SyntheticLedger:
    seed: int
    start: date  # first issue date
    end: date  # last day anything happens on
    customers: list[Customer]
    invoices: list[Invoice]
    payments: list[Payment]
    credit_notes: list[CreditNote]
    reversals: list[Reversal]
    closures: list[Closure]
    disputes: list[Dispute]
    promises: list[Promise]  # stand-alone promises (the plans' instalments are in `plans`)
    plans: list[Plan]
    _by_id: dict[str, Invoice] = field(default_factory=dict, repr=False)

    def invoice(self, invoice_id: str) -> Invoice:
        if not self._by_id:
            self._by_id = {i.invoice_id: i for i in self.invoices}
        return self._by_id[invoice_id]

    def customer_of(self) -> dict[str, Customer]:
        return {c.customer_id: c for c in self.customers}

    def all_promises(self) -> list[Promise]:
        """Stand-alone promises and every plan instalment."""
        return self.promises + [p for plan in self.plans for p in plan.instalments]

    def balances(self) -> dict[str, Decimal]:
        """Each invoice's balance once every fact is applied (what ledger-sync must show)."""
        balance = {i.invoice_id: i.total for i in self.invoices}
        reversed_ids = {r.payment_id for r in self.reversals}
        for p in self.payments:
            if p.payment_id not in reversed_ids:
                for a in p.allocations:
                    balance[a.invoice_id] -= a.amount
        for c in self.credit_notes:
            for a in c.allocations:
                balance[a.invoice_id] -= a.amount
        for closure in self.closures:
            balance[closure.invoice_id] -= closure.amount
        return balance


@dataclass
class _Settlement:
    """One planned payment or credit of one invoice, before payments of one day are gathered into runs."""

    on: date
    invoice_id: str
    amount: int  # minor units
    kind: Literal["payment", "credit"] = "payment"
    solo: bool = False  # its own payment (a reversed one, so the reversal touches one invoice)
    reversed_after_days: int | None = None  # reversed this many days after it was received


@dataclass
class _Generator:
    rng: random.Random
    start: date
    end: date
    settlements: list[_Settlement] = field(default_factory=list)
    closures: list[Closure] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)
    promises: list[Promise] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    reversed_settlements: list[tuple[_Settlement, date]] = field(default_factory=list)

    def days(self, low: int, high: int) -> timedelta:
        return timedelta(days=self.rng.randint(low, high))

    def pay(
        self, inv: Invoice, on: date, amount: int, solo: bool = False, reversed_after_days: int | None = None
    ) -> None:
        """Plan a payment; one dated after the horizon never happens (the invoice stays open)."""
        on = max(on, inv.issue_date)
        if on <= self.end and amount > 0:
            self.settlements.append(_Settlement(on, inv.invoice_id, amount, "payment", solo, reversed_after_days))

    def pay_date(self, inv: Invoice, segment: str) -> date:
        mean, spread = LATENESS[segment]
        late = max(-20, round(self.rng.gauss(mean, spread)))
        on = max(inv.issue_date + timedelta(days=1), inv.aging_due_date + timedelta(days=late))
        return payment_run(on, segment)

    def life(self, inv: Invoice, segment: str) -> None:
        """Decide what happens to one invoice after it is issued."""
        total = to_minor(inv.total, inv.currency)
        roll = self.rng.random()
        if roll < 0.007:
            self.void(inv)
        elif roll < 0.017:
            self.write_off(inv, total)
        elif roll < 0.029:
            self.dispute(inv, total, segment)
        elif roll < 0.045:
            self.credit(inv, total, segment)
        elif roll < 0.050:
            self.bounce(inv, total, segment)
        elif roll < 0.065 and self.promise(inv, total):
            pass
        else:
            self.ordinary(inv, total, segment)

    def ordinary(self, inv: Invoice, total: int, segment: str) -> None:
        roll = self.rng.random()
        if roll < 0.03:
            return  # never paid: it ages
        on = self.pay_date(inv, segment)
        if roll < 0.15 and total >= 2:  # in two parts
            first = self.rng.randint(1, total - 1)
            self.pay(inv, on, first)
            self.pay(inv, on + self.days(10, 60), total - first)
        else:
            self.pay(inv, on, total)

    def void(self, inv: Invoice) -> None:
        at = clock_instant(desk_day(inv.issue_date + self.days(1, 20)))
        if at.date() <= self.end:
            self.closures.append(Closure(inv.invoice_id, "void", at, inv.total))

    def write_off(self, inv: Invoice, total: int) -> None:
        paid = 0
        if self.rng.random() < 0.5 and total >= 2:
            paid = self.rng.randint(1, total // 2)
            self.pay(inv, inv.aging_due_date + self.days(10, 40), paid)
        at = clock_instant(desk_day(inv.aging_due_date + self.days(120, 240)))
        if at.date() <= self.end:
            self.closures.append(Closure(inv.invoice_id, "written_off", at, from_minor(total - paid, inv.currency)))

    def dispute(self, inv: Invoice, total: int, segment: str) -> None:
        opened = desk_day(inv.issue_date + self.days(5, 40))
        if opened > self.end:
            return self.ordinary(inv, total, segment)
        settled = desk_day(opened + self.days(5, 60))
        resolved = None if settled > self.end or self.rng.random() < 0.25 else settled
        self.disputes.append(
            Dispute(inv.invoice_id, clock_instant(opened), clock_instant(resolved) if resolved else None)
        )
        if resolved is not None:  # paid once the dispute is settled
            self.pay(inv, resolved + self.days(1, 30), total)

    def credit(self, inv: Invoice, total: int, segment: str) -> None:
        credit = max(1, total * self.rng.randint(10, 40) // 100)
        on = inv.issue_date + self.days(5, 40)
        if on > self.end:
            return self.ordinary(inv, total, segment)
        self.settlements.append(_Settlement(on, inv.invoice_id, credit, kind="credit"))
        self.pay(inv, max(on + timedelta(days=1), self.pay_date(inv, segment)), total - credit)

    def bounce(self, inv: Invoice, total: int, segment: str) -> None:
        """Paid, the payment bounces days later (the invoice reopens), paid again later."""
        on = self.pay_date(inv, segment)
        reversed_on = desk_day(on + self.days(3, 15))
        if reversed_on > self.end:
            return self.ordinary(inv, total, segment)
        self.pay(inv, on, total, solo=True, reversed_after_days=(reversed_on - on).days)
        self.pay(inv, reversed_on + self.days(5, 30), total, solo=True)

    def promise_day(self, after: date) -> date:
        first = after.replace(day=PROMISE_DAY)
        return first if first >= after else _next_month(first)

    def promise(self, inv: Invoice, total: int) -> bool:
        """An overdue invoice, a promise for its whole balance on a promise day: kept, kept in part, or broken."""
        created = self.promise_day(inv.aging_due_date + timedelta(days=10))
        promised = created + timedelta(days=PROMISE_OFFSET)
        if promised + timedelta(days=60) > self.end:
            return False
        roll = self.rng.random()
        received = 0
        if roll < 0.60:
            outcome: PromiseOutcome = "kept"
            received = total
            self.pay(inv, created + self.days(1, (promised - created).days), total)
        elif roll < 0.75 and total >= 2:
            outcome = "partially_kept"
            received = self.rng.randint(1, total - 1)
            self.pay(inv, created + self.days(1, (promised - created).days), received)
            self.pay(inv, promised + self.days(2, 40), total - received)
        else:
            outcome = "broken"
            if self.rng.random() < 0.7:
                self.pay(inv, promised + self.days(2, 60), total)
        self.promises.append(
            Promise(f"PR-{len(self.promises) + 1:04d}", inv.customer_id, (inv.invoice_id,), inv.currency, inv.total,
                    clock_instant(created), promised, outcome, from_minor(received, inv.currency))
        )  # fmt: skip
        return True

    def plan(self, inv: Invoice, completed: bool) -> None:
        """A plan of three monthly instalments over the whole balance (the remainder on the first, as
        promise-tracker splits it); completed, or defaulted at the second instalment (the third is cancelled)."""
        total = to_minor(inv.total, inv.currency)
        created = self.promise_day(inv.aging_due_date + timedelta(days=10))
        first_due = created + timedelta(days=PLAN_FIRST_DUE)
        share, remainder = divmod(total, PLAN_INSTALMENTS)
        amounts = [share + remainder] + [share] * (PLAN_INSTALMENTS - 1)
        key = f"PL-{len(self.plans) + 1:02d}"
        instalments = []
        for n, amount in enumerate(amounts):
            due = _add_months(first_due, n)
            outcome: PromiseOutcome
            if completed or n == 0:
                outcome, received = "kept", amount
                self.pay(inv, due - timedelta(days=2), amount)
            else:
                outcome, received = ("broken", 0) if n == 1 else ("cancelled", 0)
            instalments.append(
                Promise(f"{key}-{n + 1}", inv.customer_id, (inv.invoice_id,), inv.currency,
                        from_minor(amount, inv.currency), clock_instant(created), due, outcome,
                        from_minor(received, inv.currency), plan_key=key)
            )  # fmt: skip
        self.plans.append(
            Plan(key, inv.customer_id, (inv.invoice_id,), inv.currency, inv.total, first_due, clock_instant(created),
                 "completed" if completed else "defaulted", tuple(instalments))
        )  # fmt: skip


def payment_run(day: date, segment: str) -> date:
    """The day a customer's accounts-payable run pays what it decided to pay on `day`: enterprises every Friday,
    mid-market companies on the 1st and the 15th, public bodies on the 25th, small businesses at the month's end.
    One run is one payment over every invoice it settles."""
    if segment == "enterprise":
        return day + timedelta(days=(4 - day.weekday()) % 7)
    if segment == "mid_market":
        if day.day == 1 or day.day == 15:
            return day
        return day.replace(day=15) if day.day < 15 else _next_month(day.replace(day=1))
    if segment == "public_sector":
        return day.replace(day=25) if day.day <= 25 else _next_month(day.replace(day=25))
    return _next_month(day.replace(day=1)) - timedelta(days=1)


def _next_month(day: date) -> date:
    return _add_months(day, 1)


def _add_months(day: date, months: int) -> date:
    """The same day of the month `months` later, clamped to the month's end (as promise-tracker's plans do)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def _weighted(rng: random.Random, options: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def generate(seed: int = 15, invoices: int = 20_000, customers: int = 400, start: date = date(2024, 9, 2),
             months: int = 18) -> SyntheticLedger:  # fmt: skip
    """The ledger of `seed`: `invoices` invoices of `customers` customers issued over `months` months from
    `start`; nothing happens after the horizon's last day (what is still owed then stays open)."""
    rng = random.Random(seed)
    end = _add_months(start, months) - timedelta(days=1)
    people = [
        Customer(f"C-{n:04d}", f"Customer {n:04d}", rng.choice(SEGMENTS), _weighted(rng, CURRENCY_WEIGHTS))
        for n in range(1, customers + 1)
    ]
    gen = _Generator(rng, start, end)
    horizon = (end - start).days
    issued: list[Invoice] = []
    for n in range(1, invoices + 1):
        who = people[rng.randrange(len(people))]
        issue = start + timedelta(days=rng.randint(0, horizon))
        terms, net = rng.choice(TERMS)
        no_due = rng.random() < 0.05  # due on receipt: aging counts from the issue date
        low, high = (5_000, 3_000_000) if who.currency == "JPY" else (5_000, 2_500_000)
        minor = int(low * (high / low) ** rng.random())  # log-uniform: many small invoices, a few large
        issued.append(
            Invoice(f"INV-{n:06d}", who.customer_id, f"{issue.year}-{n:06d}", who.currency,
                    from_minor(minor, who.currency), issue, None if no_due else issue + timedelta(days=net),
                    None if no_due else terms)
        )  # fmt: skip
    segment = {c.customer_id: c.segment for c in people}
    planned = 0
    for inv in issued:
        if planned < 2 and inv.issue_date.month == 3 and inv.issue_date.year == start.year + 1:
            gen.plan(inv, completed=planned == 0)
            planned += 1
        else:
            gen.life(inv, segment[inv.customer_id])
    payments, credit_notes, reversals = _documents(gen, {i.invoice_id: i for i in issued})
    return SyntheticLedger(seed, start, end, people, issued, payments, credit_notes, reversals, gen.closures,
                           gen.disputes, gen.promises, gen.plans)  # fmt: skip


def _documents(gen: _Generator, invoices: dict[str, Invoice]) -> tuple[list[Payment], list[CreditNote], list[Reversal]]:
    """Settlements become documents: a customer's ordinary payments of one day are one payment run (several
    invoices, now and then a little over-paid), a reversed one stays alone, each credit is its own note."""
    runs: dict[tuple[str, date], list[_Settlement]] = defaultdict(list)
    payments: list[Payment] = []
    credits: list[CreditNote] = []
    reversals: list[Reversal] = []
    rng = gen.rng

    def document_id(prefix: str, n: int) -> str:
        return f"{prefix}-{n:06d}"

    for s in sorted(gen.settlements, key=lambda s: (s.on, s.invoice_id)):
        inv = invoices[s.invoice_id]
        amount = from_minor(s.amount, inv.currency)
        if s.kind == "credit":
            cn = document_id("CN", len(credits) + 1)
            credits.append(
                CreditNote(cn, inv.customer_id, inv.currency, amount, s.on, (Allocation(inv.invoice_id, amount),))
            )
        elif s.solo:
            pay = Payment(document_id("PAY", len(payments) + 1), inv.customer_id, inv.currency, amount, s.on,
                          (Allocation(inv.invoice_id, amount),))  # fmt: skip
            payments.append(pay)
            if s.reversed_after_days is not None:
                reversals.append(Reversal(pay.payment_id, clock_instant(s.on + timedelta(days=s.reversed_after_days))))
        else:
            runs[(inv.customer_id, s.on)].append(s)
    for (customer_id, on), items in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        currency = invoices[items[0].invoice_id].currency
        allocated: dict[str, int] = defaultdict(int)
        for s in items:
            allocated[s.invoice_id] += s.amount
        allocations = tuple(Allocation(i, from_minor(m, currency)) for i, m in sorted(allocated.items()))
        extra = rng.randint(1, 5_000) if rng.random() < 0.02 else 0  # over-paid: kept as unapplied credit
        amount = from_minor(sum(allocated.values()) + extra, currency)
        payments.append(Payment(document_id("PAY", len(payments) + 1), customer_id, currency, amount, on, allocations))
    payments.sort(key=lambda p: (p.received_on, p.payment_id))
    return payments, credits, reversals
