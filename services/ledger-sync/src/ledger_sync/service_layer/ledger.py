"""What happens when a money fact arrives: validate against the ledger, change it, emit events (outbox).

Every write is batch-first (the API passes a batch of one; CSV import and connectors pass up to a
thousand): one query loads what the batch touches, the pure rules in domain.ledger plan the change,
a few multi-row statements write it, and the events go to the outbox in the same transaction.
An upsert that changes nothing writes nothing and emits nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import String, and_, any_, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    Allocation,
    CreditNoteApplied,
    CustomerUpserted,
    DisputeOpened,
    DisputeResolved,
    FieldChange,
    InvoiceCreated,
    InvoiceUpdated,
    InvoiceVoided,
    PaymentApplied,
    PaymentReversed,
)
from dunning_events.money import from_minor, to_minor
from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from ledger_sync.adapters import orm
from ledger_sync.adapters.bulk_invoices import insert_new_invoices
from ledger_sync.domain.ledger import (
    AllocationDelta,
    AllocationPlan,
    Change,
    InvoiceState,
    InvoiceTerms,
    LedgerRuleViolation,
    plan_allocations,
    plan_close,
    plan_invoice_upsert,
    settle_status,
)
from ledger_sync.domain.personal_data import keep_erased
from ledger_sync.domain.records import (
    AllocationRecord,
    CreditNoteRecord,
    CustomerRecord,
    InvoiceRecord,
    PaymentRecord,
)

SOURCE = "ledger-sync"
R = TypeVar("R")


class NotFound(LookupError):
    """The tenant has no such object (another tenant's object is also 'not found')."""


@dataclass
class RowResult:
    id: str
    created: bool
    events: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events)


@dataclass
class BatchResult:
    rows: list[RowResult | None]
    errors: dict[int, LedgerRuleViolation] = field(default_factory=dict)
    events: list[Envelope[EventData]] = field(default_factory=list)
    sql_emitted: int = 0  # events written to the outbox by the bulk SQL path (adapters/bulk_invoices.py)

    @property
    def emitted(self) -> int:
        return len(self.events) + self.sql_emitted

    @property
    def changed(self) -> int:
        return sum(1 for r in self.rows if r is not None and r.changed)

    def one(self) -> RowResult:
        if self.errors:
            raise next(iter(self.errors.values()))
        row = self.rows[0]
        assert row is not None
        return row


def _minor(amount: Decimal, currency: str, where: str) -> int:
    try:
        return to_minor(amount, currency)
    except ValueError as exc:
        raise LedgerRuleViolation(where, str(exc)) from None


def _terms_of(record: InvoiceRecord) -> InvoiceTerms:
    try:
        return record.ledger_terms()
    except ValueError as exc:
        raise LedgerRuleViolation("total", str(exc)) from None


def _invoice_state(row: Any) -> InvoiceState:
    return InvoiceState(
        invoice_id=row.invoice_id,
        customer_id=row.customer_id,
        number=row.number,
        currency=row.currency,
        total=row.total_minor,
        balance=row.balance_minor,
        issue_date=row.issue_date,
        due_date=row.due_date,
        terms=row.terms,
        status=row.status,
        cancelled=row.cancelled_minor,
        disputed=row.disputed,
        dispute_reason=row.dispute_reason,
        source=row.source,
        erp_updated_at=row.erp_updated_at,
        version=row.version,
    )


_UNKNOWN_CUSTOMERS = text(
    "SELECT id FROM unnest(CAST(:ids AS text[])) AS wanted(id) WHERE NOT EXISTS "
    "(SELECT 1 FROM customers c WHERE c.tenant_id = :tenant AND c.customer_id = wanted.id)"
)


def one_of(column: Any, ids: Iterable[str]) -> Any:
    """`column = ANY(:ids)` with ONE array parameter: PostgreSQL hashes it, where `IN ($1..$1000)` compares
    every row with every id (a 100x slowdown when stats are stale, e.g. inside a big import transaction)."""
    return column == any_(bindparam(None, list(ids), type_=ARRAY(String)))


def _is_stale(stamp: datetime | None, stored: datetime | None) -> bool:
    """An ERP copy older than the one we hold (a late webhook fetch) must not roll the ledger back."""
    return stamp is not None and stored is not None and stamp < stored


def _text(value: object, currency: str, field_name: str) -> str | None:
    if value is None:
        return None
    if field_name in ("total", "balance") and isinstance(value, int):
        return format(from_minor(value, currency), "f")
    return str(value)


@dataclass(frozen=True)
class _Settlement:
    """One kind of settling document (a payment, a credit note): money allocated to invoices. What differs
    between the kinds is only where they are stored and which of their fields an upsert sets."""

    document: str  # as plan_allocations and the error messages name it
    table: Any
    allocations: Any  # its allocation table, keyed by (tenant_id, `key`, invoice_id)
    key: str
    amount: str  # the record's amount field; also the field errors name
    amount_column: str
    remaining_column: str  # what is not allocated (a payment's unapplied credit, a credit note's remaining)
    terms: Callable[[Any], dict[str, Any]]  # the stored columns the record sets besides amount and allocations
    state: Callable[[AllocationPlan], dict[str, Any]]  # status columns once its allocations are planned
    frozen_status: str | None = None  # a stored status that refuses any change


_PAYMENT = _Settlement(
    document="payment",
    table=orm.payments,
    allocations=orm.allocations,
    key="payment_id",
    amount="amount",
    amount_column="amount_minor",
    remaining_column="unapplied_minor",
    terms=lambda r: {
        "customer_id": r.customer_id,
        "currency": r.currency,
        "received_on": r.received_on,
        "reference": r.reference,
    },
    state=lambda plan: {"status": "applied", "reversal_reason": None},
    frozen_status="reversed",
)
_CREDIT_NOTE = _Settlement(
    document="credit note",
    table=orm.credit_notes,
    allocations=orm.credit_allocations,
    key="credit_note_id",
    amount="total",
    amount_column="total_minor",
    remaining_column="remaining_minor",
    terms=lambda r: {
        "customer_id": r.customer_id,
        "currency": r.currency,
        "issued_on": r.issued_on,
        "number": r.number,
    },
    state=lambda plan: {"status": "open" if plan.unapplied else "applied"},
)


class Ledger:
    """The ledger's write side for one tenant, inside the caller's transaction (the caller commits)."""

    def __init__(
        self,
        session: AsyncSession,
        outbox: OutboxWriter,
        clock: Clock,
        tenant_id: str,
        *,
        source: str = "api",
        correlation_id: uuid.UUID | None = None,
    ) -> None:
        self.session = session
        self.outbox = outbox
        self.clock = clock
        self.tenant_id = tenant_id
        self.source = source
        self.correlation_id = correlation_id or uuid.uuid4()

    # ------------------------------------------------------------------ helpers

    def _event(self, data: EventData, occurred_at: datetime | None = None) -> Envelope[EventData]:
        """`occurred_at`: the instant a stored history row carries too (a close, a reversal, a dispute), so the
        ledger's export and its events agree to the microsecond; now by default."""
        return new_event(
            data,
            tenant_id=self.tenant_id,
            source=SOURCE,
            occurred_at=occurred_at or self.clock.now(),
            correlation_id=self.correlation_id,
        )

    async def _emit(self, result: BatchResult) -> BatchResult:
        await self.outbox.add(self.session, result.events)
        return result

    async def _unknown_customers(self, ids: set[str]) -> set[str]:
        """The ids the tenant has no customer for (usually none: only those rows come back, so a batch of
        a thousand known customers costs no row fetching)."""
        if not ids:
            return set()
        rows = await self.session.execute(_UNKNOWN_CUSTOMERS, {"ids": list(ids), "tenant": self.tenant_id})
        return set(rows.scalars())

    async def erased_customers(self, ids: Iterable[str]) -> dict[str, str]:
        """The pseudonym of each of these customers whose personal data was erased (the tombstone rule)."""
        t = orm.customer_tombstones.c
        rows = await self.session.execute(
            select(t.customer_id, t.pseudonym).where(t.tenant_id == self.tenant_id, one_of(t.customer_id, ids))
        )
        return {customer_id: pseudonym for customer_id, pseudonym in rows.all()}

    async def load_invoices(self, ids: set[str], *, lock: bool = True) -> dict[str, InvoiceState]:
        if not ids:
            return {}
        i = orm.invoices.c
        stmt = (
            select(orm.invoices).where(i.tenant_id == self.tenant_id, one_of(i.invoice_id, ids)).order_by(i.invoice_id)
        )
        if lock:
            stmt = stmt.with_for_update()
        rows = await self.session.execute(stmt)
        return {r.invoice_id: _invoice_state(r) for r in rows}

    async def _write_invoice_balances(self, invoices: Sequence[InvoiceState]) -> None:
        if not invoices:
            return
        i = orm.invoices.c
        stmt = (
            update(orm.invoices)
            .where(and_(i.tenant_id == bindparam("t"), i.invoice_id == bindparam("iid")))
            .values(
                balance_minor=bindparam("bal"),
                status=bindparam("st"),
                cancelled_minor=bindparam("can"),
                version=bindparam("ver"),
                updated_at=bindparam("now"),
            )
        )
        now = self.clock.now()
        conn = await self.session.connection()
        await conn.execute(
            stmt,
            [
                {
                    "t": self.tenant_id,
                    "iid": s.invoice_id,
                    "bal": s.balance,
                    "st": s.status,
                    "can": s.cancelled,
                    "ver": s.version,
                    "now": now,
                }
                for s in invoices
            ],
        )

    def _snapshot(self, cls: type[Any], s: InvoiceState, **extra: Any) -> Any:
        return cls(
            customer_id=s.customer_id,
            invoice_id=s.invoice_id,
            number=s.number,
            currency=s.currency,
            total=from_minor(s.total, s.currency),
            balance=from_minor(s.balance, s.currency),
            issue_date=s.issue_date,
            due_date=s.due_date,
            terms=s.terms,
            status=s.status,
            disputed=s.disputed,
            version=s.version,
            **extra,
        )

    def _invoice_updated(self, s: InvoiceState, changes: Sequence[Change]) -> Envelope[EventData]:
        return self._event(
            self._snapshot(
                InvoiceUpdated,
                s,
                changes=[
                    FieldChange(
                        field=c.field, old=_text(c.old, s.currency, c.field), new=_text(c.new, s.currency, c.field)
                    )
                    for c in changes
                ],
            )
        )

    @staticmethod
    def _allocations(deltas: Sequence[AllocationDelta], currency: str) -> list[Allocation]:
        return [
            Allocation(
                invoice_id=d.invoice_id,
                amount=from_minor(abs(d.delta), currency),
                invoice_balance_after=from_minor(d.balance_after, currency),
                invoice_status_after=d.status_after,
                invoice_version_after=d.version_after,
            )
            for d in deltas
        ]

    # ------------------------------------------------------------------ customers

    async def upsert_customers(
        self,
        records: Sequence[CustomerRecord],
        stamps: Sequence[datetime | None] | None = None,
        *,
        skip_invalid: bool = False,
    ) -> BatchResult:
        c = orm.customers.c
        ids = {r.id for r in records}
        existing = {
            row.customer_id: row
            for row in (
                await self.session.execute(
                    select(orm.customers)
                    .where(c.tenant_id == self.tenant_id, one_of(c.customer_id, ids))
                    .order_by(c.customer_id)
                    .with_for_update()
                )
            ).mappings()
        }
        # Read after the rows are locked: an erasure committed meanwhile is seen (it locks the row too).
        erased = await self.erased_customers(ids)
        result = BatchResult(rows=[])
        writes: dict[str, dict[str, Any]] = {}
        created: set[str] = set()
        now = self.clock.now()
        for n, rec in enumerate(records):
            stamp = stamps[n] if stamps else None
            if rec.id in erased:
                rec = keep_erased(rec, erased[rec.id])
            contacts = rec.all_contacts()
            values: dict[str, Any] = {
                "name": rec.name,
                "contacts": [x.model_dump() for x in contacts],
                "time_zone": rec.time_zone,
                "locale": rec.locale,
                "country": rec.country,
                "tags": rec.tags,
                "segment": rec.segment,
                "consent": rec.consent.model_dump(),
                "credit_hold": rec.credit_hold,
            }
            current = writes.get(rec.id) or existing.get(rec.id)
            if current is not None and (
                _is_stale(stamp, current.get("erp_updated_at")) or all(current[k] == v for k, v in values.items())
            ):
                result.rows.append(RowResult(rec.id, created=False))
                continue
            is_new = current is None
            if is_new:
                created.add(rec.id)
            writes[rec.id] = {
                **values,
                "tenant_id": self.tenant_id,
                "customer_id": rec.id,
                "source": self.source,
                "erp_updated_at": stamp,
                "updated_at": now,
            }
            ev = self._event(
                CustomerUpserted(
                    customer_id=rec.id,
                    name=rec.name,
                    contacts=contacts,
                    time_zone=rec.time_zone,
                    locale=rec.locale,
                    country=rec.country,
                    tags=rec.tags,
                    segment=rec.segment,
                    consent=rec.consent,
                    credit_hold=rec.credit_hold,
                )
            )
            result.events.append(ev)
            result.rows.append(RowResult(rec.id, created=is_new, events=[ev.type]))
        if writes:
            stmt = insert(orm.customers)
            cols = [k for k in next(iter(writes.values())) if k not in ("tenant_id", "customer_id")]
            await self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[c.tenant_id, c.customer_id], set_={k: stmt.excluded[k] for k in cols}
                ),
                list(writes.values()),
            )
        return await self._emit(result)

    # ------------------------------------------------------------------ invoices

    def _checked_terms(
        self, records: Sequence[InvoiceRecord | InvoiceTerms], unknown: set[str]
    ) -> list[InvoiceTerms | LedgerRuleViolation]:
        """Each record as terms in minor units, or what is wrong with it that needs no invoice lookup."""
        out: list[InvoiceTerms | LedgerRuleViolation] = []
        for rec in records:
            try:
                terms = rec if isinstance(rec, InvoiceTerms) else _terms_of(rec)
                if terms.customer_id in unknown:
                    raise LedgerRuleViolation("customer_id", f"unknown customer {terms.customer_id!r}")
                out.append(terms)
            except LedgerRuleViolation as exc:
                out.append(exc)
        return out

    async def check_invoices(self, records: Sequence[InvoiceRecord | InvoiceTerms]) -> dict[int, LedgerRuleViolation]:
        """Validate a batch against the ledger as it stands, writing nothing (an import's first pass).

        Takes validated records or InvoiceTerms (the CSV import reads clean rows straight to terms)."""
        unknown = await self._unknown_customers({r.customer_id for r in records})
        checked = self._checked_terms(records, unknown)
        existing = await self.load_invoices({t.invoice_id for t in checked if isinstance(t, InvoiceTerms)}, lock=False)
        errors: dict[int, LedgerRuleViolation] = {}
        for n, terms in enumerate(checked):
            if isinstance(terms, LedgerRuleViolation):
                errors[n] = terms
                continue
            current = existing.get(terms.invoice_id)
            if current is None:
                continue  # a new invoice: nothing in the ledger it could contradict
            try:
                plan_invoice_upsert(current, terms)
            except LedgerRuleViolation as exc:
                errors[n] = exc
        return errors

    async def upsert_invoices(
        self,
        records: Sequence[InvoiceRecord | InvoiceTerms],
        stamps: Sequence[datetime | None] | None = None,
        *,
        skip_invalid: bool = False,
    ) -> BatchResult:
        unknown = await self._unknown_customers({r.customer_id for r in records})
        result = BatchResult(rows=[])
        terms_of: list[InvoiceTerms | None] = []
        for n, checked in enumerate(self._checked_terms(records, unknown)):
            if isinstance(checked, LedgerRuleViolation):
                if not skip_invalid:
                    raise checked
                result.errors[n] = checked
                terms_of.append(None)
            else:
                terms_of.append(checked)

        # New invoices go in with one INSERT .. ON CONFLICT DO NOTHING (the bulk-import fast path, no
        # lookup); only ids that already existed are loaded, locked and diffed.
        first: dict[str, int] = {}
        for n, terms in enumerate(terms_of):
            if terms is not None:
                first.setdefault(terms.invoice_id, n)
        inserted = await insert_new_invoices(
            self.session,
            tenant_id=self.tenant_id,
            source=self.source,
            new=[(terms_of[n], stamps[n] if stamps else None) for n in first.values()],  # type: ignore[misc]
            now=self.clock.now(),
            correlation_id=self.correlation_id,
            wake=getattr(self.outbox, "_on_commit", None),
        )
        result.sql_emitted += len(inserted)
        existing = await self.load_invoices({i for i in first if i not in inserted})

        writes: dict[str, InvoiceState] = {}
        current_of: dict[str, InvoiceState] = dict(existing)
        created = [InvoiceCreated.event_type]
        for n, terms in enumerate(terms_of):
            if terms is None:
                result.rows.append(None)
                continue
            invoice_id = terms.invoice_id
            stamp = stamps[n] if stamps else None
            if invoice_id in inserted and first[invoice_id] == n:
                result.rows.append(RowResult(invoice_id, created=True, events=created))
                continue
            current = current_of.get(invoice_id)
            if current is None:  # inserted by an earlier row of this batch: its state as inserted
                k = first[invoice_id]
                current = current_of[invoice_id] = self._new_invoice(terms_of[k], stamps[k] if stamps else None)  # type: ignore[arg-type]
            if _is_stale(stamp, current.erp_updated_at):
                result.rows.append(RowResult(invoice_id, created=False))
                continue
            try:
                state, changes = plan_invoice_upsert(current, terms)
            except LedgerRuleViolation as exc:
                if not skip_invalid:
                    raise
                result.errors[n] = exc
                result.rows.append(None)
                continue
            if not changes:
                if stamp is not None and stamp != current.erp_updated_at:
                    writes[invoice_id] = current_of[invoice_id] = replace(
                        current, erp_updated_at=stamp
                    )  # newer stamp, silently
                result.rows.append(RowResult(invoice_id, created=False))
                continue
            state = replace(state, erp_updated_at=stamp or current.erp_updated_at)
            writes[invoice_id] = current_of[invoice_id] = state
            ev = self._invoice_updated(state, changes)
            result.events.append(ev)
            result.rows.append(RowResult(invoice_id, created=False, events=[ev.type]))
        await self._write_invoices(list(writes.values()))
        return await self._emit(result)

    def _new_invoice(self, terms: InvoiceTerms, stamp: datetime | None) -> InvoiceState:
        return InvoiceState(
            invoice_id=terms.invoice_id,
            customer_id=terms.customer_id,
            number=terms.number,
            currency=terms.currency,
            total=terms.total,
            balance=terms.total,
            issue_date=terms.issue_date,
            due_date=terms.due_date,
            terms=terms.terms,
            status=settle_status(terms.total, "open"),
            source=self.source,
            erp_updated_at=stamp,
        )

    def _invoice_rows(self, states: Sequence[InvoiceState]) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [
            {
                "tenant_id": self.tenant_id,
                "invoice_id": s.invoice_id,
                "customer_id": s.customer_id,
                "number": s.number,
                "currency": s.currency,
                "total_minor": s.total,
                "balance_minor": s.balance,
                "cancelled_minor": s.cancelled,
                "issue_date": s.issue_date,
                "due_date": s.due_date,
                "terms": s.terms,
                "status": s.status,
                "disputed": s.disputed,
                "dispute_reason": s.dispute_reason,
                "source": s.source,
                "erp_updated_at": s.erp_updated_at,
                "version": s.version,
                "updated_at": now,
            }
            for s in states
        ]

    async def _write_invoices(self, states: Sequence[InvoiceState]) -> None:
        if not states:
            return
        rows = self._invoice_rows(states)
        stmt = insert(orm.invoices)
        i = orm.invoices.c
        cols = [k for k in rows[0] if k not in ("tenant_id", "invoice_id")]
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[i.tenant_id, i.invoice_id], set_={k: stmt.excluded[k] for k in cols}
            ),
            rows,
        )

    async def close_invoice(self, invoice_id: str, status: str, reason: str | None = None) -> RowResult:
        """Void (status void) or write off (status written_off); both emit invoice.voided.

        Stores the close's instant and the balance it cancelled as its event reports them: the balance of the
        last snapshot (before a void hands the payments back, which no event reports)."""
        invoices = await self.load_invoices({invoice_id})
        inv = invoices.get(invoice_id)
        if inv is None:
            raise NotFound(invoice_id)
        if inv.status == status:
            return RowResult(invoice_id, created=False)
        now = self.clock.now()
        cancelled_as_seen = inv.balance
        if status == "void" and inv.applied:
            inv = await self._release_allocations(inv, now)
        closed = plan_close(inv, status)
        await self._write_invoice_balances([closed])
        i = orm.invoices.c
        await self.session.execute(
            update(orm.invoices)
            .where(i.tenant_id == self.tenant_id, i.invoice_id == invoice_id)
            .values(closed_at=now, closed_minor=func.coalesce(i.closed_minor, 0) + cancelled_as_seen)
        )
        ev = self._event(self._snapshot(InvoiceVoided, closed, reason=reason), now)
        await self.outbox.add(self.session, [ev])
        return RowResult(invoice_id, created=False, events=[ev.type])

    async def _remember_released(
        self, document: str, cause: str, released: Iterable[tuple[str, str, int]], at: datetime
    ) -> None:
        """Keep (invoice_id, document_id, amount) allocations a reversal or a void took off, for the export."""
        rows = [
            {
                "tenant_id": self.tenant_id,
                "invoice_id": invoice_id,
                "document": document,
                "document_id": document_id,
                "amount_minor": amount,
                "cause": cause,
                "released_at": at,
            }
            for invoice_id, document_id, amount in released
        ]
        if not rows:
            return
        stmt = insert(orm.released_allocations)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[c for c in orm.released_allocations.primary_key.columns],
                set_={
                    "amount_minor": orm.released_allocations.c.amount_minor + stmt.excluded.amount_minor,
                    "cause": stmt.excluded.cause,
                    "released_at": stmt.excluded.released_at,
                },
            ),
            rows,
        )

    async def _release_allocations(self, inv: InvoiceState, now: datetime) -> InvoiceState:
        """A voided invoice hands its payments and credits back: they become unapplied credit."""
        a, p = orm.allocations.c, orm.payments.c
        released = (
            await self.session.execute(
                delete(orm.allocations)
                .where(a.tenant_id == self.tenant_id, a.invoice_id == inv.invoice_id)
                .returning(a.payment_id, a.amount_minor)
            )
        ).all()
        for payment_id, amount in released:
            await self.session.execute(
                update(orm.payments)
                .where(p.tenant_id == self.tenant_id, p.payment_id == payment_id)
                .values(unapplied_minor=p.unapplied_minor + amount)
            )
        ca, cn = orm.credit_allocations.c, orm.credit_notes.c
        credited = (
            await self.session.execute(
                delete(orm.credit_allocations)
                .where(ca.tenant_id == self.tenant_id, ca.invoice_id == inv.invoice_id)
                .returning(ca.credit_note_id, ca.amount_minor)
            )
        ).all()
        for note_id, amount in credited:
            await self.session.execute(
                update(orm.credit_notes)
                .where(cn.tenant_id == self.tenant_id, cn.credit_note_id == note_id)
                .values(remaining_minor=cn.remaining_minor + amount)
            )
        iid = inv.invoice_id
        await self._remember_released("payment", "void", [(iid, p_id, x) for p_id, x in released], now)
        await self._remember_released("credit_note", "void", [(iid, n_id, x) for n_id, x in credited], now)
        back = sum(x for _, x in released) + sum(x for _, x in credited)
        return replace(inv, balance=inv.balance + back)

    async def set_dispute(self, invoice_id: str, *, open_: bool, note: str | None = None) -> RowResult:
        invoices = await self.load_invoices({invoice_id})
        inv = invoices.get(invoice_id)
        if inv is None:
            raise NotFound(invoice_id)
        if inv.disputed == open_:
            return RowResult(invoice_id, created=False)
        version = inv.version + 1  # the snapshot's `disputed` changes: later snapshots must outrank older ones
        now = self.clock.now()
        i, d = orm.invoices.c, orm.invoice_disputes.c
        await self.session.execute(
            update(orm.invoices)
            .where(i.tenant_id == self.tenant_id, i.invoice_id == invoice_id)
            .values(disputed=open_, dispute_reason=note if open_ else None, version=version, updated_at=now)
        )
        # The dispute period, dated as its event: opened, or the open period of the invoice resolved. Opened again
        # at the instant it was resolved (a clock standing still) is that period open again, as a consumer keying
        # periods by their opening instant sees it.
        if open_:
            stmt = insert(orm.invoice_disputes).values(tenant_id=self.tenant_id, invoice_id=invoice_id, opened_at=now)
            await self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[d.tenant_id, d.invoice_id, d.opened_at], set_={"resolved_at": None}
                )
            )
        else:
            await self.session.execute(
                update(orm.invoice_disputes)
                .where(d.tenant_id == self.tenant_id, d.invoice_id == invoice_id, d.resolved_at.is_(None))
                .values(resolved_at=now)
            )
        data: EventData = (
            DisputeOpened(customer_id=inv.customer_id, invoice_id=invoice_id, reason=note, invoice_version=version)
            if open_
            else DisputeResolved(
                customer_id=inv.customer_id, invoice_id=invoice_id, resolution=note, invoice_version=version
            )
        )
        ev = self._event(data, now)
        await self.outbox.add(self.session, [ev])
        return RowResult(invoice_id, created=False, events=[ev.type])

    # ------------------------------------------------------------------ payments and credit notes

    async def _existing_allocations(self, table: Any, key: str, ids: set[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        if not ids:
            return out
        rows = await self.session.execute(
            select(table.c[key], table.c.invoice_id, table.c.amount_minor).where(
                table.c.tenant_id == self.tenant_id, one_of(table.c[key], ids)
            )
        )
        for doc_id, invoice_id, amount in rows:
            out.setdefault(doc_id, {})[invoice_id] = amount
        return out

    def _requested(self, allocations: Sequence[AllocationRecord], currency: str) -> list[tuple[str, int]]:
        return [
            (a.invoice_id, _minor(a.amount, currency, f"allocations[{i}].amount")) for i, a in enumerate(allocations)
        ]

    async def record_payments(
        self,
        records: Sequence[PaymentRecord],
        stamps: Sequence[datetime | None] | None = None,
        *,
        skip_invalid: bool = False,
    ) -> BatchResult:
        """Upsert payments: allocations applied to invoices (payment.applied), an edit at the source moves
        them (payment.reversed for what was given back), what is not allocated stays unapplied credit."""
        return await self._settle(_PAYMENT, records, stamps, skip_invalid, self._payment_events)

    def _payment_events(
        self, rec: PaymentRecord, row: dict[str, Any] | None, plan: AllocationPlan, before: dict[str, InvoiceState]
    ) -> list[Envelope[EventData]]:
        events: list[Envelope[EventData]] = []
        if plan.given_back:
            events.append(
                self._event(
                    PaymentReversed(
                        customer_id=rec.customer_id,
                        payment_id=rec.id,
                        currency=rec.currency,
                        amount=from_minor(sum(-d.delta for d in plan.given_back), rec.currency),
                        reason="allocations changed at the source",
                        allocations=self._allocations(plan.given_back, rec.currency),
                    )
                )
            )
        if row is None or plan.applied or not plan.given_back:
            events.append(
                self._event(
                    PaymentApplied(
                        customer_id=rec.customer_id,
                        payment_id=rec.id,
                        currency=rec.currency,
                        amount=rec.amount,
                        received_on=rec.received_on,
                        allocations=self._allocations(plan.applied, rec.currency),
                        unapplied=from_minor(plan.unapplied, rec.currency),
                    )
                )
            )
        return events

    async def record_credit_notes(
        self,
        records: Sequence[CreditNoteRecord],
        stamps: Sequence[datetime | None] | None = None,
        *,
        skip_invalid: bool = False,
    ) -> BatchResult:
        """Upsert credit notes: credit allocated to invoices (credit_note.applied), the rest kept as remaining
        credit; credit taken back by an edit at the source shows as invoice.updated."""
        return await self._settle(_CREDIT_NOTE, records, stamps, skip_invalid, self._credit_note_events)

    def _credit_note_events(
        self, rec: CreditNoteRecord, row: dict[str, Any] | None, plan: AllocationPlan, before: dict[str, InvoiceState]
    ) -> list[Envelope[EventData]]:
        events = [self._balance_given_back(plan.invoices[d.invoice_id], before[d.invoice_id]) for d in plan.given_back]
        if row is None or plan.applied:
            events.append(
                self._event(
                    CreditNoteApplied(
                        customer_id=rec.customer_id,
                        credit_note_id=rec.id,
                        currency=rec.currency,
                        total=rec.total,
                        issued_on=rec.issued_on,
                        allocations=self._allocations(plan.applied, rec.currency),
                    )
                )
            )
        return events

    def _balance_given_back(self, inv: InvoiceState, was: InvoiceState) -> Envelope[EventData]:
        """Credit taken off an invoice (a credit note edited or voided at the source): invoice.updated."""
        changes = [Change("balance", was.balance, inv.balance)]
        if was.status != inv.status:
            changes.append(Change("status", was.status, inv.status))
        return self._invoice_updated(inv, changes)

    async def _settle(
        self,
        kind: _Settlement,
        records: Sequence[Any],
        stamps: Sequence[datetime | None] | None,
        skip_invalid: bool,
        events_for: Callable[
            [Any, dict[str, Any] | None, AllocationPlan, dict[str, InvoiceState]], list[Envelope[EventData]]
        ],
    ) -> BatchResult:
        """Upsert settling documents (payments, credit notes: money allocated to invoices) as one batch.

        Loads what the batch touches (the documents, their allocations, the invoices on both sides) locked,
        plans each document's allocations in order against the balances the ones before it left, then writes
        documents, allocations and invoice balances with one statement each. A document equal to the stored
        one (or older, by the ERP's change stamp) changes nothing."""
        table, key = kind.table, kind.key
        ids = {r.id for r in records}
        existing = {
            getattr(row, key): row
            for row in (
                await self.session.execute(
                    select(table)
                    .where(table.c.tenant_id == self.tenant_id, one_of(table.c[key], ids))
                    .order_by(table.c[key])
                    .with_for_update()
                )
            )
        }
        old_allocs = await self._existing_allocations(kind.allocations, key, set(existing))
        wanted_invoices = {a.invoice_id for r in records for a in r.allocations} | {
            inv for allocs in old_allocs.values() for inv in allocs
        }
        invoices = await self.load_invoices(wanted_invoices)
        unknown = await self._unknown_customers({r.customer_id for r in records})
        result = BatchResult(rows=[])
        doc_rows: dict[str, dict[str, Any]] = {}
        alloc_sets: dict[str, dict[str, int]] = {}
        touched: dict[str, InvoiceState] = {}
        now = self.clock.now()
        for n, rec in enumerate(records):
            stamp = stamps[n] if stamps else None
            try:
                row = doc_rows.get(rec.id) or (existing[rec.id]._asdict() if rec.id in existing else None)
                old = alloc_sets.get(rec.id, old_allocs.get(rec.id, {}))
                if rec.customer_id in unknown:
                    raise LedgerRuleViolation("customer_id", f"unknown customer {rec.customer_id!r}")
                amount = _minor(getattr(rec, kind.amount), rec.currency, kind.amount)
                requested = self._requested(rec.allocations, rec.currency)
                terms = {**kind.terms(rec), kind.amount_column: amount}
                if row is not None:
                    same = all(row[k] == v for k, v in terms.items()) and old == dict(requested)
                    if same or _is_stale(stamp, row["erp_updated_at"]):
                        result.rows.append(RowResult(rec.id, created=False))
                        continue
                    if kind.frozen_status is not None and row["status"] == kind.frozen_status:
                        raise LedgerRuleViolation(
                            "id", f"{kind.document} {rec.id!r} was {kind.frozen_status}; it can no longer change"
                        )
                plan = plan_allocations(
                    document=kind.document,
                    currency=rec.currency,
                    customer_id=rec.customer_id,
                    amount=amount,
                    old=old,
                    new=requested,
                    invoices=invoices,
                )
            except LedgerRuleViolation as exc:
                if not skip_invalid:
                    raise
                result.errors[n] = exc
                result.rows.append(None)
                continue
            before = {k: invoices[k] for k in plan.invoices}
            invoices.update(plan.invoices)
            touched.update(plan.invoices)
            alloc_sets[rec.id] = dict(requested)
            doc_rows[rec.id] = {
                "tenant_id": self.tenant_id,
                key: rec.id,
                **terms,
                kind.remaining_column: plan.unapplied,
                **kind.state(plan),
                "source": self.source if row is None else row["source"],
                "erp_updated_at": stamp,
                "updated_at": now,
            }
            events = events_for(rec, row, plan, before)
            result.events.extend(events)
            result.rows.append(RowResult(rec.id, created=row is None, events=[e.type for e in events]))
        if doc_rows:
            stmt = insert(table)
            cols = [k for k in next(iter(doc_rows.values())) if k not in ("tenant_id", key)]
            await self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[table.c.tenant_id, table.c[key]], set_={k: stmt.excluded[k] for k in cols}
                ),
                list(doc_rows.values()),
            )
            await self._replace_allocations(kind.allocations, key, alloc_sets)
            await self._write_invoice_balances(list(touched.values()))
        return await self._emit(result)

    async def _replace_allocations(self, table: Any, key: str, sets: dict[str, dict[str, int]]) -> None:
        if not sets:
            return
        await self.session.execute(
            delete(table).where(table.c.tenant_id == self.tenant_id, one_of(table.c[key], list(sets)))
        )
        rows = [
            {"tenant_id": self.tenant_id, key: doc_id, "invoice_id": inv, "amount_minor": amount}
            for doc_id, allocs in sets.items()
            for inv, amount in allocs.items()
        ]
        if rows:
            await self.session.execute(insert(table), rows)

    async def reverse_payment(self, payment_id: str, reason: str | None = None) -> RowResult:
        """A bounced or charged-back payment: its allocations are undone and the invoices reopen."""
        now = self.clock.now()
        withdrawn = await self._withdraw(
            _PAYMENT, payment_id, now, status="reversed", reversal_reason=reason, reversed_at=now
        )
        if withdrawn is None:
            return RowResult(payment_id, created=False)
        row, plan, _ = withdrawn
        await self._remember_released(
            "payment", "reversal", [(d.invoice_id, payment_id, -d.delta) for d in plan.given_back], now
        )
        ev = self._event(
            PaymentReversed(
                customer_id=row.customer_id,
                payment_id=payment_id,
                currency=row.currency,
                amount=from_minor(row.amount_minor, row.currency),
                reason=reason,
                allocations=self._allocations(plan.given_back, row.currency),
            ),
            now,
        )
        await self.outbox.add(self.session, [ev])
        return RowResult(payment_id, created=False, events=[ev.type])

    async def void_credit_note(self, credit_note_id: str) -> RowResult:
        """A credit note voided or deleted at the source: its credit leaves the invoices it sat on."""
        withdrawn = await self._withdraw(_CREDIT_NOTE, credit_note_id, self.clock.now(), status="void")
        if withdrawn is None:
            return RowResult(credit_note_id, created=False)
        _, plan, was = withdrawn
        events = [self._balance_given_back(plan.invoices[d.invoice_id], was[d.invoice_id]) for d in plan.given_back]
        await self.outbox.add(self.session, events)
        return RowResult(credit_note_id, created=False, events=[e.type for e in events])

    async def _withdraw(
        self, kind: _Settlement, doc_id: str, now: datetime, *, status: str, **closing: Any
    ) -> tuple[Any, AllocationPlan, dict[str, InvoiceState]] | None:
        """Take a settling document off the books: every allocation undone (the invoices get the money
        back), nothing left to allocate, `status` set. None when it already has that status.
        Returns its row, the plan and the invoices as they were before."""
        table, key = kind.table, kind.key
        row = (
            await self.session.execute(
                select(table).where(table.c.tenant_id == self.tenant_id, table.c[key] == doc_id).with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(doc_id)
        if row.status == status:
            return None
        old = (await self._existing_allocations(kind.allocations, key, {doc_id})).get(doc_id, {})
        invoices = await self.load_invoices(set(old))
        plan = plan_allocations(
            document=kind.document,
            currency=row.currency,
            customer_id=row.customer_id,
            amount=getattr(row, kind.amount_column),
            old=old,
            new=[],
            invoices=invoices,
        )
        await self.session.execute(
            update(table)
            .where(table.c.tenant_id == self.tenant_id, table.c[key] == doc_id)
            .values(status=status, **closing, **{kind.remaining_column: 0}, updated_at=now)
        )
        await self._replace_allocations(kind.allocations, key, {doc_id: {}})
        await self._write_invoice_balances(list(plan.invoices.values()))
        return row, plan, invoices


async def invariant_violations(session: AsyncSession, tenant_id: str | None = None) -> list[tuple[str, str]]:
    """Invoices whose stored balance is not total - allocations - credits - cancelled (should be none)."""
    i, a, ca = orm.invoices.c, orm.allocations.c, orm.credit_allocations.c
    paid = (
        select(a.tenant_id, a.invoice_id, a.amount_minor.label("amt"))
        .union_all(select(ca.tenant_id, ca.invoice_id, ca.amount_minor))
        .subquery()
    )
    applied = (
        select(paid.c.tenant_id, paid.c.invoice_id, func.sum(paid.c.amt).label("applied"))
        .group_by(paid.c.tenant_id, paid.c.invoice_id)
        .subquery()
    )
    stmt = (
        select(i.tenant_id, i.invoice_id)
        .select_from(
            orm.invoices.outerjoin(
                applied, and_(applied.c.tenant_id == i.tenant_id, applied.c.invoice_id == i.invoice_id)
            )
        )
        .where(i.balance_minor != i.total_minor - func.coalesce(applied.c.applied, 0) - i.cancelled_minor)
    )
    if tenant_id is not None:
        stmt = stmt.where(i.tenant_id == tenant_id)
    return [(r[0], r[1]) for r in (await session.execute(stmt)).all()]


__all__ = ["BatchResult", "Ledger", "LedgerRuleViolation", "NotFound", "RowResult", "invariant_violations"]
