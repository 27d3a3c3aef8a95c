"""What dunning did and what came of it: promise and plan outcomes, the effect of each dunning step and channel,
and the contact volume per day and channel. Each figure is a few set-wise GROUP BY queries (one per fact table);
their rows become per-currency tallies (domain.activity) that are merged, converted and rounded in Python.

The formulas are the README's "Activity figures" section, word for word what this module does."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, Select, and_, cast, func, literal_column, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from dunning_events.money import minor_units
from dunning_kit.problems import FieldError, InvalidInput
from insights.adapters import orm
from insights.domain.activity import Key, Tally, converted, median_days, share
from insights.domain.periods import intervals
from insights.domain.report import Cell, FigureTable, FxRateUsed, GroupBy, Interval, days, money
from insights.service_layer import fx

# What each figure may be grouped by (currency is always a group: asking for it changes nothing).
PROMISE_GROUPS: frozenset[GroupBy] = frozenset({"segment", "customer", "currency"})
STEP_GROUPS: frozenset[GroupBy] = frozenset({"step", "channel", "currency"})
CONTACT_GROUPS: frozenset[GroupBy] = frozenset({"channel"})

WINDOWS = (3, 7, 14)  # "paid within N days after the step"
PAID_KINDS = ("payment", "reversal", "credit")  # the changes that count as the debtor paying (or un-paying)
HOLD_RULES = ("contact_cap", "consent", "quiet_hours", "other")


@dataclass(frozen=True)
class ActivityQuery:
    tenant_id: str
    period_from: date
    period_to: date
    currency: str | None = None
    segment: str | None = None
    customer_id: str | None = None
    group_by: Sequence[GroupBy] = ()
    interval: Interval | None = None
    convert: bool = False

    @property
    def start(self) -> datetime:
        return datetime.combine(self.period_from, time(), UTC)

    @property
    def end(self) -> datetime:  # exclusive: midnight UTC after `to`
        return datetime.combine(self.period_to + timedelta(days=1), time(), UTC)


# ---------------------------------------------------------------- the shared parts


async def check_filters(session: AsyncSession, q: ActivityQuery) -> None:
    """An unknown segment or customer is a mistake in the query, not an empty figure."""
    c = orm.customers
    errors: list[FieldError] = []
    if q.segment is not None:
        found = await session.scalar(
            select(true()).where(c.c.tenant_id == q.tenant_id, c.c.segment == q.segment).limit(1)
        )
        if not found:
            errors.append(FieldError("query.segment", f"no customer of this tenant has segment {q.segment!r}", "query"))
    if q.customer_id is not None:
        found = await session.scalar(
            select(true()).where(c.c.tenant_id == q.tenant_id, c.c.customer_id == q.customer_id).limit(1)
        )
        if not found:
            errors.append(FieldError("query.customer_id", f"this tenant has no customer {q.customer_id!r}", "query"))
    if errors:
        raise InvalidInput(errors)


def customer_scope(q: ActivityQuery, customer_id: Any) -> list[ColumnElement[bool]]:
    """The WHERE terms of the customer and segment filters, for a table's customer_id column."""
    out: list[ColumnElement[bool]] = []
    if q.customer_id is not None:
        out.append(customer_id == q.customer_id)
    if q.segment is not None:
        c = orm.customers
        out.append(
            customer_id.in_(select(c.c.customer_id).where(c.c.tenant_id == q.tenant_id, c.c.segment == q.segment))
        )
    return out


def utc_day(instant: Any) -> ColumnElement[date]:
    # A literal zone, not a bind parameter: the same expression appears in SELECT and GROUP BY.
    return cast(func.timezone(literal_column("'UTC'"), instant), Date)


def bucket(day: Any, interval: Interval | None) -> Any:
    """The first day of the interval a day falls in, unclipped (tallies() clips it to the period)."""
    if interval is None:
        return None
    if interval == "day":
        return day
    return cast(func.date_trunc(literal_column(f"'{interval}'"), cast(day, DateTime)), Date)


def labelled(columns: Iterable[tuple[str, Any]]) -> list[Any]:
    return [expr.label(name) for name, expr in columns if expr is not None]


async def tallies(
    session: AsyncSession,
    stmt: Select[Any],
    key_names: list[str],
    q: ActivityQuery,
    into: dict[Key, Tally],
    count_names: Sequence[str] = (),
    money_names: Sequence[str] = (),
) -> None:
    """Add the rows of a grouped query into the tallies by key; a series' first interval is clipped to `from`."""
    for row in (await session.execute(stmt)).mappings():
        key: Key = tuple(row[name] for name in key_names)
        if q.interval is not None:
            key = (max(row["period_start"], q.period_from), *key[1:])
        tally = into.setdefault(key, Tally())
        for name in count_names:
            tally.counts[name] += int(row[name] or 0)
        for name in money_names:
            tally.money[name] = tally.amount(name) + (row[name] or Decimal(0))
        if row.get("days_to_pay"):
            tally.days_to_pay.update({int(k): int(v) for k, v in row["days_to_pay"].items()})


def densify(found: dict[Key, Tally], q: ActivityQuery) -> dict[Key, Tally]:
    """A series has a row for every interval of the period for every group that has data in some interval."""
    if q.interval is None:
        return found
    groups = {key[1:] for key in found}
    return {(start, *group): found.get((start, *group), Tally())
            for start, _ in intervals(q.period_from, q.period_to, q.interval) for group in groups}  # fmt: skip


async def convert_rows(
    session: AsyncSession, q: ActivityQuery, found: dict[Key, Tally]
) -> tuple[dict[Key, Tally], str | None, list[FxRateUsed]]:
    """Per-currency tallies as they are, or (convert=true) merged into the tenant's reporting currency: money
    times the currency's rate, counts and day histograms added; shares and medians are taken after the merge."""
    if not q.convert or not found:
        return found, None, []
    reporting, used = await conversion_rates(session, q, {str(key[-1]) for key in found})
    rates = {u.currency: u.rate for u in used} | {reporting: Decimal(1)}
    return converted(found, rates, reporting), reporting, used


async def conversion_rates(
    session: AsyncSession, q: ActivityQuery, currencies: set[str]
) -> tuple[str, list[FxRateUsed]]:
    """The tenant's reporting currency and one rate per other currency (the latest supplied on or before `to`);
    `fx.conversion` refuses with a 422 naming `query.convert` when there is no reporting currency or no rate."""
    conversion = await fx.conversion(session, q.tenant_id, currencies, q.period_to)
    return conversion.reporting_currency, list(conversion.rates.values())


def sort_key(key: Key) -> tuple[tuple[bool, str], ...]:
    return tuple((v is None, "" if v is None else str(v)) for v in key)


def table_of(
    figure: str,
    q: ActivityQuery,
    group_columns: list[str],
    value_columns: list[str],
    found: dict[Key, Tally],
    finish: Callable[[Tally, str], dict[str, Cell]],
    reporting: str | None,
    used: list[FxRateUsed],
    empty_note: str,
) -> FigureTable:
    """The figure's rows in key order: [period_start, period_end], the group columns, currency, the values."""
    series = ["period_start", "period_end"] if q.interval is not None else []
    ends = dict(intervals(q.period_from, q.period_to, q.interval)) if q.interval is not None else {}
    rows: list[dict[str, Cell]] = []
    for key in sorted(found, key=sort_key):
        row: dict[str, Cell] = {}
        values = list(key)
        if q.interval is not None:
            start = values.pop(0)
            assert isinstance(start, date)
            row |= {"period_start": start.isoformat(), "period_end": ends[start].isoformat()}
        row |= {name: (None if v is None else str(v)) for name, v in zip(group_columns, values, strict=True)}
        row |= finish(found[key], str(key[-1]) if "currency" in group_columns else "")
        rows.append(row)
    return FigureTable(
        figure=figure,
        columns=[*series, *group_columns, *value_columns],
        rows=rows,
        period_from=q.period_from,
        period_to=q.period_to,
        interval=q.interval,
        group_by=list(q.group_by),
        reporting_currency=reporting,
        fx_rates_used=used,
        note=None if rows else empty_note,
    )


def cash(amount: Decimal, currency: str) -> str:
    return money(amount, minor_units(currency))


# ---------------------------------------------------------------- promises and plans

PROMISE_COUNTS = ("made", "kept", "broken", "partially_kept", "cancelled", "open")
PLAN_COUNTS = ("plans_created", "plans_completed", "plans_defaulted", "plans_active")
PROMISE_COLUMNS = [*PROMISE_COUNTS, "kept_rate", "amount_promised", "amount_received", *PLAN_COUNTS, "plans_amount"]


def promise_row(t: Tally, currency: str) -> dict[str, Cell]:
    c = t.counts
    return {
        **{name: c[name] for name in PROMISE_COUNTS},
        "kept_rate": share(c["kept"], c["kept"] + c["broken"]),
        "amount_promised": cash(t.amount("amount_promised"), currency),
        "amount_received": cash(t.amount("amount_received"), currency),
        **{name: c[name] for name in PLAN_COUNTS},
        "plans_amount": cash(t.amount("plans_amount"), currency),
    }


async def promise_figures(session: AsyncSession, q: ActivityQuery) -> FigureTable:
    """Promises and payment plans created in the period, with their outcome as known now. A plan's instalments
    are tracked as promises by promise-tracker; they count in the plan columns, not as promises."""
    await check_filters(session, q)
    p, pl, cu = orm.promises, orm.plans, orm.customers
    by_segment, by_customer = "segment" in q.group_by, "customer" in q.group_by
    group_columns = [*(["segment"] if by_segment else []), *(["customer_id"] if by_customer else []), "currency"]
    key_names = [*(["period_start"] if q.interval else []), *group_columns]
    found: dict[Key, Tally] = {}
    for table, counts, money_names, extra in (
        (p, PROMISE_COUNTS, ("amount_promised", "amount_received"), [p.c.plan_id.is_(None)]),
        (pl, PLAN_COUNTS, ("plans_amount",), []),
    ):
        keys = labelled([
            ("period_start", bucket(utc_day(table.c.created_at), q.interval)),
            ("segment", cu.c.segment if by_segment else None),
            ("customer_id", table.c.customer_id if by_customer else None),
            ("currency", table.c.currency),
        ])  # fmt: skip
        status = table.c.status
        if table is p:
            values = [
                func.count().label("made"),
                func.count().filter(status == "kept").label("kept"),
                func.count().filter(status == "broken").label("broken"),
                func.count().filter(and_(status == "broken", p.c.partially_kept)).label("partially_kept"),
                func.count().filter(status == "cancelled").label("cancelled"),
                func.count().filter(status == "open").label("open"),
                func.sum(p.c.amount).label("amount_promised"),
                func.sum(p.c.received).filter(status.in_(("kept", "broken"))).label("amount_received"),
            ]
        else:
            values = [
                func.count().label("plans_created"),
                func.count().filter(status == "completed").label("plans_completed"),
                func.count().filter(status == "defaulted").label("plans_defaulted"),
                func.count().filter(status == "active").label("plans_active"),
                func.sum(pl.c.total).label("plans_amount"),
            ]
        source = table.outerjoin(
            cu, and_(cu.c.tenant_id == table.c.tenant_id, cu.c.customer_id == table.c.customer_id)
        ) if by_segment else table  # fmt: skip
        stmt = (
            select(*keys, *values)
            .select_from(source)
            .where(
                table.c.tenant_id == q.tenant_id,
                table.c.created_at >= q.start,
                table.c.created_at < q.end,
                *([table.c.currency == q.currency] if q.currency else []),
                *customer_scope(q, table.c.customer_id),
                *extra,
            )
            .group_by(*keys)
        )
        await tallies(session, stmt, key_names, q, found, counts, money_names)
    found, reporting, used = await convert_rows(session, q, densify(found, q))
    return table_of(
        "promises", q, group_columns, PROMISE_COLUMNS, found, promise_row, reporting, used,
        f"no promise or payment plan was created from {q.period_from} to {q.period_to} for this query",
    )  # fmt: skip


# ---------------------------------------------------------------- dunning steps and channels

DELIVERY_COUNTS = ("sent", "delivered", "bounced", "failed", "opted_out")
STEP_COLUMNS = [
    "steps", *DELIVERY_COUNTS, "invoices", "amount",
    *(f"paid_{n}d_amount_share" for n in WINDOWS), *(f"paid_{n}d_invoice_share" for n in WINDOWS),
    "median_days_to_pay",
]  # fmt: skip


def step_row(t: Tally, currency: str) -> dict[str, Cell]:
    c = t.counts
    amount = t.amount("amount")
    return {
        "steps": c["steps"],
        **{name: c[name] for name in DELIVERY_COUNTS},
        "invoices": c["invoices"],
        "amount": cash(amount, currency),
        **{f"paid_{n}d_amount_share": share(t.amount(f"paid_{n}d"), amount) for n in WINDOWS},
        **{f"paid_{n}d_invoice_share": share(c[f"settled_{n}d"], c["invoices"]) for n in WINDOWS},
        "median_days_to_pay": days(median_days(t.days_to_pay)),
    }


async def step_figures(session: AsyncSession, q: ActivityQuery) -> FigureTable:
    """Per dunning step (policy and step name) and/or channel: the steps that went out in the period, what their
    deliveries did, and how much of what they asked for was paid soon after."""
    await check_filters(session, q)
    s, si, inv, ch, d = orm.steps, orm.step_invoices, orm.invoices, orm.invoice_changes, orm.deliveries
    by_channel = "channel" in q.group_by
    by_step = "step" in q.group_by or not by_channel  # per step unless only the channel was asked for
    group_columns = [*(["policy_id", "step_name"] if by_step else []), *(["channel"] if by_channel else []), "currency"]
    key_names = [*(["period_start"] if q.interval else []), *group_columns]

    def in_scope(steps: Any) -> list[ColumnElement[bool]]:
        return [
            steps.c.tenant_id == q.tenant_id,
            steps.c.sent_on >= q.period_from,
            steps.c.sent_on <= q.period_to,
            *([steps.c.currency == q.currency] if q.currency else []),
            *customer_scope(q, steps.c.customer_id),
        ]

    step_scope = in_scope(s)
    # A channel's row is about the steps that had a delivery sent on it (read for the period's steps only).
    period_steps = s.alias("period_steps")
    sent_on_channel = (
        select(d.c.step_id, d.c.channel)
        .where(
            d.c.tenant_id == q.tenant_id,
            d.c.sent_at.is_not(None),
            d.c.step_id.in_(select(period_steps.c.step_id).where(*in_scope(period_steps))),
        )
        .distinct()
        .subquery("sent_channels")
    )

    def keys(channel: Any) -> list[Any]:
        return labelled([
            ("period_start", bucket(s.c.sent_on, q.interval)),
            ("policy_id", s.c.policy_id if by_step else None),
            ("step_name", s.c.step_name if by_step else None),
            ("channel", channel if by_channel else None),
            ("currency", s.c.currency),
        ])  # fmt: skip

    steps_source: Any = s.join(sent_on_channel, sent_on_channel.c.step_id == s.c.step_id) if by_channel else s
    found: dict[Key, Tally] = {}

    # 1. how many steps
    k = keys(sent_on_channel.c.channel)
    stmt = select(*k, func.count().label("steps")).select_from(steps_source).where(*step_scope).group_by(*k)
    await tallies(session, stmt, key_names, q, found, ("steps",))

    # 2. their invoices: the amount asked, what was paid within N days, the days until each was settled
    paid = (
        select(
            *(
                func.coalesce(-func.sum(ch.c.amount).filter(ch.c.on_date <= s.c.sent_on + n), 0).label(f"p{n}")
                for n in WINDOWS
            )
        )
        .where(
            ch.c.tenant_id == si.c.tenant_id,
            ch.c.invoice_id == si.c.invoice_id,
            ch.c.kind.in_(PAID_KINDS),
            ch.c.on_date >= s.c.sent_on,
            ch.c.on_date <= s.c.sent_on + max(WINDOWS),
        )
        .lateral("paid")
    )
    per_invoice = (
        select(
            *k,
            si.c.balance,
            *(func.least(si.c.balance, func.greatest(0, paid.c[f"p{n}"])).label(f"paid_{n}d") for n in WINDOWS),
            (inv.c.settled_on - s.c.sent_on).label("days"),
        )
        .select_from(
            steps_source.join(si, and_(si.c.tenant_id == s.c.tenant_id, si.c.step_id == s.c.step_id))
            .outerjoin(inv, and_(inv.c.tenant_id == si.c.tenant_id, inv.c.invoice_id == si.c.invoice_id))
            .join(paid, true())
        )
        .where(*step_scope)
        .subquery("per_invoice")
    )
    pk = [per_invoice.c[name] for name in key_names]
    by_days = (
        select(
            *pk,
            per_invoice.c.days,
            func.count().label("n"),
            func.sum(per_invoice.c.balance).label("amount"),
            *(func.sum(per_invoice.c[f"paid_{n}d"]).label(f"paid_{n}d") for n in WINDOWS),
        )
        .group_by(*pk, per_invoice.c.days)
        .subquery("by_days")
    )
    bk = [by_days.c[name] for name in key_names]
    stmt = select(
        *bk,
        func.sum(by_days.c.n).label("invoices"),
        func.sum(by_days.c.amount).label("amount"),
        *(func.sum(by_days.c[f"paid_{n}d"]).label(f"paid_{n}d") for n in WINDOWS),
        *(func.sum(by_days.c.n).filter(by_days.c.days.between(0, n)).label(f"settled_{n}d") for n in WINDOWS),
        func.jsonb_object_agg(by_days.c.days, by_days.c.n, type_=JSONB)
        .filter(by_days.c.days >= 0)
        .label("days_to_pay"),
    ).group_by(*bk)
    await tallies(session, stmt, key_names, q, found, ("invoices", *(f"settled_{n}d" for n in WINDOWS)),
                  ("amount", *(f"paid_{n}d" for n in WINDOWS)))  # fmt: skip

    # 3. their deliveries (every delivery of the steps, on the row's channel), each opt-out counted for the latest
    # delivery to that customer on that channel sent at or before it
    r, latest_d = orm.consent_revocations, orm.deliveries.alias("latest_delivery")
    latest = (
        select(latest_d.c.delivery_id)
        .where(
            latest_d.c.tenant_id == r.c.tenant_id,
            latest_d.c.customer_id == r.c.customer_id,
            latest_d.c.channel == r.c.channel,
            latest_d.c.sent_at <= r.c.revoked_at,
        )
        .order_by(latest_d.c.sent_at.desc(), latest_d.c.delivery_id.desc())
        .limit(1)
        .lateral("latest")
    )
    opted = (
        select(latest.c.delivery_id)
        .select_from(r.join(latest, true()))
        .where(r.c.tenant_id == q.tenant_id, r.c.revoked_at >= q.start)  # earlier ones precede every step here
        .distinct()
        .subquery("opted")
    )
    k = keys(d.c.channel)
    stmt = (
        select(
            *k,
            func.count().filter(d.c.sent_at.is_not(None)).label("sent"),
            func.count().filter(d.c.delivered_at.is_not(None)).label("delivered"),
            func.count().filter(d.c.bounced_at.is_not(None)).label("bounced"),
            func.count().filter(d.c.failed_at.is_not(None)).label("failed"),
            func.count(opted.c.delivery_id).label("opted_out"),
        )
        .select_from(
            s.join(d, and_(d.c.tenant_id == s.c.tenant_id, d.c.step_id == s.c.step_id)).outerjoin(
                opted, opted.c.delivery_id == d.c.delivery_id
            )
        )
        .where(*step_scope)
        .group_by(*k)
    )
    await tallies(session, stmt, key_names, q, found, DELIVERY_COUNTS)

    found, reporting, used = await convert_rows(session, q, densify(found, q))
    return table_of(
        "steps", q, group_columns, STEP_COLUMNS, found, step_row, reporting, used,
        f"no dunning step went out from {q.period_from} to {q.period_to} for this query",
    )  # fmt: skip


# ---------------------------------------------------------------- contact volume

CONTACT_COLUMNS = ["sent", "held", *(f"held_{rule}" for rule in HOLD_RULES)]


def contact_row(t: Tally, _currency: str) -> dict[str, Cell]:
    c = t.counts
    return {"sent": c["sent"], "held": sum(c[f"held_{rule}"] for rule in HOLD_RULES),
            **{f"held_{rule}": c[f"held_{rule}"] for rule in HOLD_RULES}}  # fmt: skip


async def contact_figures(session: AsyncSession, q: ActivityQuery) -> FigureTable:
    """Per day (or week, month) and channel: the deliveries sent and the contacts the rules held back. Contacts
    carry no money, so they are not per currency: a currency filter is refused and `convert` changes nothing."""
    if q.currency is not None:
        raise InvalidInput([FieldError("query.currency", "contacts are not per currency", "query")])
    await check_filters(session, q)
    q = replace(q, interval=q.interval or "day")
    d, h = orm.deliveries, orm.contact_holds
    key_names = ["period_start", "channel"]
    found: dict[Key, Tally] = {}
    k = labelled([("period_start", bucket(utc_day(d.c.sent_at), q.interval)), ("channel", d.c.channel)])
    stmt = (
        select(*k, func.count().label("sent"))
        .where(
            d.c.tenant_id == q.tenant_id,
            d.c.sent_at >= q.start,
            d.c.sent_at < q.end,
            *customer_scope(q, d.c.customer_id),
        )
        .group_by(*k)
    )
    await tallies(session, stmt, key_names, q, found, ("sent",))
    k = labelled([("period_start", bucket(h.c.held_on, q.interval)), ("channel", h.c.channel)])
    held = [f"held_{rule}" for rule in HOLD_RULES]
    stmt = (
        select(
            *k,
            *(func.count().filter(h.c.rule == rule).label(f"held_{rule}") for rule in HOLD_RULES[:-1]),
            func.count().filter(h.c.rule.not_in(HOLD_RULES[:-1])).label("held_other"),  # other, or a rule added later
        )
        .where(
            h.c.tenant_id == q.tenant_id,
            h.c.held_on >= q.period_from,
            h.c.held_on <= q.period_to,
            *customer_scope(q, h.c.customer_id),
        )
        .group_by(*k)
    )
    await tallies(session, stmt, key_names, q, found, held)
    return table_of(
        "contacts", q, ["channel"], CONTACT_COLUMNS, densify(found, q), contact_row, None, [],
        f"no contact was sent or held from {q.period_from} to {q.period_to} for this query",
    )  # fmt: skip
