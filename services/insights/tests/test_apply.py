"""The appliers on real PostgreSQL (adapters/apply_*.py through service_layer/handlers.py): a redelivery or an
older snapshot changes nothing, and ar_daily / sales_daily stay equal to the GROUP BY over their sources whatever
a batch does (a reversal, a void, a write-off, a total change, a due date moved). One database for the module;
each test has its own tenant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_kit.db import make_engine, make_sessions
from dunning_kit.testing import PostgresBackend, assert_tables_cover_their_topics, poll_until
from insights.adapters import orm
from insights.service_layer.handlers import HANDLERS, apply_envelopes
from insights.service_layer.statistics import STALE_AFTER, analyze_stale

from . import factories as fx

READ_MODEL = [
    "customers", "invoices", "invoice_changes", "ar_daily", "sales_daily", "disputes", "promises", "plans",
    "steps", "step_invoices", "deliveries", "consent_revocations", "contact_holds",
]  # fmt: skip

AR_FROM_CHANGES = text(
    "SELECT i.currency, i.due_date, c.on_date, sum(c.amount) AS amount, sum(c.open_delta) AS open_count "
    "FROM invoice_changes c JOIN invoices i USING (tenant_id, invoice_id) WHERE c.tenant_id = :t "
    "GROUP BY 1, 2, 3 HAVING sum(c.amount) <> 0 OR sum(c.open_delta) <> 0 ORDER BY 1, 2, 3"
)
AR_KEPT = text(
    "SELECT currency, due_date, on_date, amount, open_count FROM ar_daily WHERE tenant_id = :t ORDER BY 1, 2, 3"
)
SALES_FROM_INVOICES = text(
    "SELECT currency, issue_date, sum(total) AS amount, count(*) AS n FROM invoices "
    "WHERE tenant_id = :t AND status <> 'void' GROUP BY 1, 2 ORDER BY 1, 2"
)
SALES_KEPT = text(
    "SELECT currency, issue_date, amount, invoice_count FROM sales_daily WHERE tenant_id = :t ORDER BY 1, 2"
)


@pytest_asyncio.fixture(scope="module")
async def sessions(pg_backend: PostgresBackend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(pg_backend.fresh_database(), orm.SCHEMA)
    try:
        yield make_sessions(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def apply(sessions: async_sessionmaker[AsyncSession], envelopes: list[Any]) -> None:
    async with sessions() as session, session.begin():
        await apply_envelopes(session, envelopes)


async def dump(sessions: async_sessionmaker[AsyncSession], tenant: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    async with sessions() as session:
        for table in READ_MODEL:
            rows = await session.execute(
                text(f"SELECT * FROM {table} WHERE tenant_id = :t ORDER BY 1, 2, 3"), {"t": tenant}
            )
            out[table] = sorted(tuple(r) for r in rows)
    return out


async def assert_daily_tables_match(sessions: async_sessionmaker[AsyncSession], tenant: str) -> None:
    async with sessions() as session:
        assert (await session.execute(AR_KEPT, {"t": tenant})).all() == (
            await session.execute(AR_FROM_CHANGES, {"t": tenant})
        ).all()
        assert (await session.execute(SALES_KEPT, {"t": tenant})).all() == (
            await session.execute(SALES_FROM_INVOICES, {"t": tenant})
        ).all()
        # Every invoice's changes add up to the ledger's balance.
        off = await session.execute(
            text(
                "SELECT i.invoice_id, i.balance, sum(c.amount) FROM invoices i JOIN invoice_changes c "
                "USING (tenant_id, invoice_id) WHERE i.tenant_id = :t GROUP BY 1, 2 HAVING i.balance <> sum(c.amount)"
            ),
            {"t": tenant},
        )
        assert off.all() == []


def for_tenant(envelopes: list[Any], tenant: str) -> list[Any]:
    return [env.model_copy(update={"tenant_id": tenant}) for env in envelopes]


def mixed_history() -> list[list[Any]]:
    """Batches of a mixed ledger: A paid in part, reversed, credited, its due date moved; B voided after a payment;
    C written off; D's total amended; plus a step, its delivery and a kept promise."""
    return [
        [fx.customer(), fx.invoice("A", total="100", version=1), fx.invoice("B", total="50", version=1),
         fx.invoice("C", total="80", version=1, due=date(2026, 3, 20)),
         fx.invoice("D", total="200", version=1, issue=date(2026, 3, 3), when=fx.at(1))],
        [fx.payment("P1", [fx.alloc("A", "40", "60", 2), fx.alloc("B", "20", "30", 2)],
                    received=date(2026, 3, 5), when=fx.at(4)),
         fx.step_due("S1", {"A": "60", "C": "80"}, when=fx.at(5)), fx.sent("D1", "S1", when=fx.at(5.01))],
        [fx.reversal("P1", [fx.alloc("A", "40", "100", 3), fx.alloc("B", "20", "50", 3)], when=fx.at(7)),
         fx.credit("N1", [fx.alloc("A", "10", "90", 4)], issued=date(2026, 3, 10), when=fx.at(8)),
         fx.sent("D1", "S1", when=fx.at(5.2), delivered=True),
         *fx.promise("PR1", when=fx.at(8), kept_at=fx.at(12))],
        [fx.payment("P2", [fx.alloc("B", "20", "30", 4)], received=date(2026, 3, 12), when=fx.at(10)),
         fx.voided("B", total="50", version=5, when=fx.at(11)),
         fx.voided("C", status="written_off", total="80", due=date(2026, 3, 20), version=2, when=fx.at(11)),
         fx.updated("D", total="150", version=2, issue=date(2026, 3, 3), when=fx.at(12)),
         fx.updated("A", total="100", balance="90", version=5, due=date(2026, 4, 15), when=fx.at(13)),
         fx.dispute("A", opened=True, version=6, when=fx.at(14))],
        [fx.payment("P3", [fx.alloc("A", "90", "0", 7)], received=date(2026, 3, 20), when=fx.at(18)),
         fx.dispute("A", opened=False, version=8, when=fx.at(19))],
    ]  # fmt: skip


async def test_ar_daily_is_the_group_by_of_the_changes_after_a_mixed_history(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    for batch in mixed_history():
        await apply(sessions, for_tenant(batch, tenant))
        await assert_daily_tables_match(sessions, tenant)
    model = await dump(sessions, tenant)
    invoices = {r[1]: r for r in model["invoices"]}
    cols = [c.name for c in orm.invoices.columns]

    def inv(iid: str, col: str) -> Any:
        return invoices[iid][cols.index(col)]

    assert (inv("A", "balance"), inv("A", "due_date"), inv("A", "settled_on")) == (
        0,
        date(2026, 4, 15),
        date(2026, 3, 20),
    )
    assert inv("A", "disputed") is False and inv("A", "last_step_name") == "reminder"
    assert (inv("B", "status"), inv("B", "closed_on")) == ("void", date(2026, 3, 13))
    assert (inv("C", "status"), inv("C", "closed_on"), inv("C", "settled_on")) == (
        "written_off",
        date(2026, 3, 13),
        None,
    )
    changes = {(r[1], r[2]): r[5] for r in model["invoice_changes"]}
    # B's payments stay on their days (the void hands them back as unapplied credit, no event takes them off
    # the history); the void cancels what was still open.
    assert {k: v for k, v in changes.items() if k[0] == "B"} == {
        ("B", "issue"): 50,
        ("B", "payment:P1"): -20,
        ("B", "reversal:P1"): 20,
        ("B", "payment:P2"): -20,
        ("B", "void"): -30,
    }
    assert changes[("C", "write_off")] == -80
    assert changes[("D", "issue")] == 150  # the amended total counts from the issue date
    assert changes[("A", "reversal:P1")] == 40 and ("A", "prior") not in changes
    assert [r[3] for r in model["sales_daily"]] == [
        Decimal("180.0000"),
        Decimal("150.0000"),
    ]  # A+C on 2 Mar, D on 3 Mar
    assert [(r[2], r[3]) for r in model["disputes"]] == [(fx.at(14), fx.at(19))]
    delivery = model["deliveries"][0]
    assert delivery[5:7] == (fx.at(5.01), fx.at(5.2))
    assert [(r[1], r[11]) for r in model["promises"]] == [("PR1", "kept")]


async def test_a_redelivered_history_changes_nothing(sessions: async_sessionmaker[AsyncSession], tenant: str) -> None:
    history = [for_tenant(b, tenant) for b in mixed_history()]
    for batch in history:
        await apply(sessions, batch)
    once = await dump(sessions, tenant)
    for batch in history:  # every batch again, in order, then all at once
        await apply(sessions, batch)
    await apply(sessions, [env for batch in history for env in batch])
    assert await dump(sessions, tenant) == once
    await assert_daily_tables_match(sessions, tenant)


async def test_an_older_snapshot_changes_nothing(sessions: async_sessionmaker[AsyncSession], tenant: str) -> None:
    await apply(sessions, for_tenant([fx.customer(), fx.invoice("A", total="100", version=1)], tenant))
    await apply(
        sessions,
        for_tenant([fx.payment("P1", [fx.alloc("A", "30", "70", 2)], received=date(2026, 3, 5), when=fx.at(3)),
                    fx.updated("A", total="100", balance="70", version=3, due=date(2026, 4, 10), when=fx.at(4))],
                   tenant),
    )  # fmt: skip
    before = await dump(sessions, tenant)
    stale = [
        fx.updated("A", total="120", balance="120", version=2, due=date(2026, 5, 1), when=fx.at(2)),
        fx.invoice("A", total="100", version=1),  # the created event, replayed from a dead letter
    ]
    await apply(sessions, for_tenant(stale, tenant))
    assert await dump(sessions, tenant) == before
    await assert_daily_tables_match(sessions, tenant)


async def test_a_payment_newer_than_a_dispute_in_one_batch_keeps_its_balance(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    await apply(sessions, for_tenant([fx.invoice("A", total="100", version=1)], tenant))
    await apply(
        sessions,
        for_tenant([fx.dispute("A", opened=True, version=2, when=fx.at(1)),
                    fx.payment("P1", [fx.alloc("A", "30", "70", 3)], received=date(2026, 3, 4), when=fx.at(2))],
                   tenant),
    )  # fmt: skip
    async with sessions() as session:
        row = (
            await session.execute(
                text("SELECT balance, disputed, ledger_version FROM invoices WHERE tenant_id = :t"), {"t": tenant}
            )
        ).one()
    assert tuple(row) == (Decimal("70.0000"), True, 3)


async def test_the_handler_table_covers_the_four_topics() -> None:
    await assert_tables_cover_their_topics("insights", HANDLERS)


async def test_a_table_that_outgrew_its_statistics_is_analyzed(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    """The statistics timer's rule: a read-model table changed by more than it held at its last ANALYZE (and by at
    least STALE_AFTER rows) is analyzed, so the appliers' lookups by key keep their plans while a tenant grows."""
    async with sessions() as session:
        held = (await session.execute(text("SELECT reltuples FROM pg_class WHERE oid = 'invoices'::regclass"))).one()[0]
    grown = int(max(held, 0)) + STALE_AFTER + 500
    async with sessions() as session, session.begin():
        await session.execute(
            text("INSERT INTO invoices (tenant_id, invoice_id, customer_id, number, currency, total, balance, "
                 "issue_date, due_date, status) SELECT :t, 'G' || n, 'C1', 'G' || n, 'EUR', 1, 1, '2026-03-01', "
                 "'2026-03-31', 'open' FROM generate_series(1, :n) AS n"),
            {"t": tenant, "n": grown},
        )  # fmt: skip
    analyzed: list[str] = []

    async def invoices_analyzed() -> bool:  # the insert's counts reach pg_stat within about a second
        analyzed.extend(await analyze_stale(sessions))
        return "invoices" in analyzed

    await poll_until(invoices_analyzed, timeout=30, what="the invoices table to be analyzed")
    async with sessions() as session:
        tuples = (await session.execute(text("SELECT reltuples FROM pg_class WHERE oid = 'invoices'::regclass"))).one()
    assert tuples[0] >= grown
    assert "invoices" not in await analyze_stale(sessions)  # fresh now: nothing more to do
