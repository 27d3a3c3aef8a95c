"""Property tests: whatever sequence of ledger writes arrives, balance = total - allocations - credits
(- what a void or write-off cancelled), nothing goes negative, and a refused write changes nothing.

The first test drives the real service layer against real PostgreSQL; the second the pure rules alone.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import SimulatedClock
from dunning_kit.db import make_engine, make_sessions
from dunning_kit.pytest_plugin import SIM_START
from ledger_sync.adapters import orm
from ledger_sync.adapters.ledger_export import invoice_page
from ledger_sync.domain.ledger import InvoiceState, LedgerRuleViolation, plan_allocations
from ledger_sync.domain.records import CreditNoteRecord, CustomerRecord, InvoiceRecord, PaymentRecord
from ledger_sync.entrypoints.schemas import ExportInvoice
from ledger_sync.service_layer.ledger import Ledger, NotFound, invariant_violations

INVOICES = ["I0", "I1", "I2", "I3"]
CURRENCY = {"I0": "EUR", "I1": "EUR", "I2": "EUR", "I3": "USD"}
cents = st.integers(min_value=1, max_value=20_000)


def money(minor: int) -> str:
    return str(Decimal(minor).scaleb(-2))


allocation_lists = st.lists(st.tuples(st.sampled_from(INVOICES), cents), max_size=3)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("invoice"), st.sampled_from(INVOICES), st.integers(min_value=0, max_value=30_000)),
        st.tuples(st.just("pay"), st.sampled_from(["P0", "P1", "P2", "P3"]), cents, allocation_lists),
        st.tuples(st.just("credit"), st.sampled_from(["N0", "N1"]), cents, allocation_lists),
        st.tuples(st.just("reverse"), st.sampled_from(["P0", "P1", "P2", "P3"])),
        st.tuples(st.just("void"), st.sampled_from(INVOICES)),
        st.tuples(st.just("write_off"), st.sampled_from(INVOICES)),
        st.tuples(st.just("dispute"), st.sampled_from(INVOICES), st.booleans()),
    ),
    min_size=1,
    max_size=14,
)


async def _apply(ledger: Ledger, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "invoice":
        _, inv, total = op
        await ledger.upsert_invoices(
            [
                InvoiceRecord(
                    id=inv,
                    customer_id="C",
                    number=f"N-{inv}",
                    currency=CURRENCY[inv],
                    total=Decimal(money(total)),
                    issue_date=date(2026, 3, 1),
                    due_date=date(2026, 3, 31),
                )
            ]
        )
    elif kind in ("pay", "credit"):
        _, doc, amount, allocs = op
        allocations = [{"invoice_id": i, "amount": money(a)} for i, a in allocs]
        if kind == "pay":
            rec: Any = PaymentRecord(
                id=doc, customer_id="C", currency="EUR", amount=money(amount), received_on=date(2026, 3, 5),
                allocations=allocations,
            )  # fmt: skip
            await ledger.record_payments([rec])
        else:
            rec = CreditNoteRecord(
                id=doc, customer_id="C", currency="EUR", total=money(amount), issued_on=date(2026, 3, 5),
                allocations=allocations,
            )  # fmt: skip
            await ledger.record_credit_notes([rec])
    elif kind == "reverse":
        await ledger.reverse_payment(op[1], "bounced")
    elif kind == "void":
        await ledger.close_invoice(op[1], "void")
    elif kind == "write_off":
        await ledger.close_invoice(op[1], "written_off")
    elif kind == "dispute":
        await ledger.set_dispute(op[1], open_=op[2])


async def _fingerprint(session: AsyncSession, tenant: str) -> tuple[Any, ...]:
    i, p, a, cn, ca, ob = (
        orm.invoices.c, orm.payments.c, orm.allocations.c, orm.credit_notes.c, orm.credit_allocations.c, orm.outbox.c,
    )  # fmt: skip
    invoices = (
        await session.execute(
            select(i.invoice_id, i.total_minor, i.balance_minor, i.status, i.cancelled_minor, i.disputed)
            .where(i.tenant_id == tenant)
            .order_by(i.invoice_id)
        )
    ).all()
    pays = (
        await session.execute(
            select(p.payment_id, p.amount_minor, p.unapplied_minor, p.status)
            .where(p.tenant_id == tenant)
            .order_by(p.payment_id)
        )
    ).all()
    allocs = (
        await session.execute(
            select(a.payment_id, a.invoice_id, a.amount_minor)
            .where(a.tenant_id == tenant)
            .order_by(a.payment_id, a.invoice_id)
        )
    ).all()
    notes = (
        await session.execute(
            select(cn.credit_note_id, cn.total_minor, cn.remaining_minor)
            .where(cn.tenant_id == tenant)
            .order_by(cn.credit_note_id)
        )
    ).all()
    credits = (
        await session.execute(
            select(ca.credit_note_id, ca.invoice_id, ca.amount_minor)
            .where(ca.tenant_id == tenant)
            .order_by(ca.credit_note_id, ca.invoice_id)
        )
    ).all()
    events = await session.scalar(select(func.count()).select_from(orm.outbox))
    _ = ob
    return (tuple(invoices), tuple(pays), tuple(allocs), tuple(notes), tuple(credits), events)


@pytest.fixture(scope="module")
def property_db(pg_backend: Any) -> str:
    return str(pg_backend.fresh_database())


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
async def test_balances_obey_the_invariant_after_any_sequence_of_writes(
    property_db: str, ops: list[tuple[Any, ...]]
) -> None:
    engine = make_engine(property_db, orm.SCHEMA, pool_size=2)
    sessions = make_sessions(engine)
    outbox = OutboxWriter(orm.outbox)
    clock = SimulatedClock(SIM_START)
    tenant = f"t-{uuid.uuid4().hex[:10]}"  # every example gets a clean tenant in the shared database
    try:
        async with sessions() as session, session.begin():
            await Ledger(session, outbox, clock, tenant).upsert_customers([CustomerRecord(id="C", name="Customer")])
        for op in ops:
            async with sessions() as session:
                before = await _fingerprint(session, tenant)
            refused = False
            try:
                async with sessions() as session, session.begin():
                    await _apply(Ledger(session, outbox, clock, tenant), op)
            except (LedgerRuleViolation, NotFound):
                refused = True
            async with sessions() as session:
                if refused:
                    assert await _fingerprint(session, tenant) == before, f"refused {op} changed the ledger"
                assert await invariant_violations(session, tenant) == [], f"after {op}"
        async with sessions() as session:
            invoices, pays, allocs, notes, credits, _ = await _fingerprint(session, tenant)
            for inv_id, total, balance, status, cancelled, _d in invoices:
                assert 0 <= balance <= total
                assert (status == "paid") == (balance == 0 and status not in ("void", "written_off")), (inv_id, status)
                if status == "void":
                    assert cancelled == total and not [x for x in allocs if x[1] == inv_id]
            for pay_id, amount, unapplied, status in pays:
                applied = sum(x[2] for x in allocs if x[0] == pay_id)
                assert unapplied == (0 if status == "reversed" else amount - applied)
            for note_id, total, remaining in notes:
                assert remaining == total - sum(x[2] for x in credits if x[0] == note_id)
            # The export's history accounts for every invoice's balance: an invoice whose whole life the ledger saw
            # has nothing left over for a consumer to call "settled before the platform" (point 2 of issue 15).
            page = json.loads(await invoice_page(session, tenant, 5000, None))
            for got in map(ExportInvoice.model_validate, page["items"]):
                standing = sum(Decimal(p.amount) for p in got.payments if p.reversed_at is None)
                credited = sum(Decimal(c.amount) for c in got.credits)
                closed = Decimal(got.closed.amount) if got.closed else Decimal(0)
                assert Decimal(got.total) - Decimal(got.balance) - standing - credited - closed == 0, got
                assert got.disputed == any(d.resolved_at is None for d in got.disputes), got
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------------------ pure rules


invoice_states = st.dictionaries(
    st.sampled_from(INVOICES),
    st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)).map(lambda t: (max(t), min(t))),
    min_size=1,
)


@given(
    invoices=invoice_states,
    old=st.dictionaries(st.sampled_from(INVOICES), cents, max_size=2),
    new=allocation_lists,
    amount=cents,
)
def test_planned_allocations_never_overdraw_an_invoice_or_the_payment(
    invoices: dict[str, tuple[int, int]], old: dict[str, int], new: list[tuple[str, int]], amount: int
) -> None:
    states = {
        k: InvoiceState(k, "C", k, "EUR", total=total, balance=balance, issue_date=date(2026, 3, 1))
        for k, (total, balance) in invoices.items()
    }
    # old allocations must be consistent with the states they sit on
    old = {k: min(v, states[k].applied) for k, v in old.items() if k in states and states[k].applied}
    try:
        plan = plan_allocations(
            document="payment", currency="EUR", customer_id="C", amount=amount, old=old, new=new, invoices=states
        )
    except LedgerRuleViolation:
        return
    for inv_id, after in plan.invoices.items():
        before = states[inv_id]
        assert 0 <= after.balance <= after.total
        delta = sum(d.delta for d in plan.deltas if d.invoice_id == inv_id)
        assert before.balance - after.balance == delta
    assert plan.unapplied == amount - sum(a for _, a in new)
    assert plan.unapplied >= 0
