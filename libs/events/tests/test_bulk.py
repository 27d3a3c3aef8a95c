"""The set-wise SQL helpers on real PostgreSQL: the raw connection stays in the session's transaction, and a
batch handed over as one array per column lands row by row with its types, constants and conflict rule."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import text

from dunning_events.bulk import ArrayInsert, column_arrays, raw_connection, unnest

from .conftest import SCHEMA, PlumbingDb

_LEDGER_LINES = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA}.ledger_lines (
  tenant_id text NOT NULL, invoice_id text NOT NULL, amount numeric NOT NULL, due_date date,
  tags text[] NOT NULL, imported boolean NOT NULL, PRIMARY KEY (tenant_id, invoice_id))
"""
_INSERT_LINES = ArrayInsert(
    "ledger_lines",
    [("invoice_id", "text"), ("amount", "numeric"), ("due_date", "date"), ("tags", "text")],
    values={"tenant_id": "$1", "imported": "true", "tags": "string_to_array(u.tags, ',')"},
    scalars=1,
    tail="ON CONFLICT (tenant_id, invoice_id) DO NOTHING RETURNING invoice_id",
)


async def _lines(db: PlumbingDb) -> list[tuple[object, ...]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT tenant_id, invoice_id, amount, due_date, tags, imported FROM {SCHEMA}.ledger_lines "
                 "ORDER BY invoice_id")
        )  # fmt: skip
        return [tuple(r) for r in rows]


async def test_a_raw_statement_is_undone_with_the_session_it_ran_in(db: PlumbingDb) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(_LEDGER_LINES))
    async with db.sessions() as session:
        # The session has run nothing yet: SQLAlchemy would begin only at its first statement.
        apg = await raw_connection(session)
        await apg.execute("INSERT INTO ledger_lines VALUES ('acme', 'INV-1', 10, NULL, '{}', false)")
        await session.rollback()
    async with db.sessions() as session:
        apg = await raw_connection(session, in_transaction=False)
        await apg.execute("INSERT INTO ledger_lines VALUES ('acme', 'INV-2', 20, NULL, '{}', false)")
        await session.rollback()  # nothing to undo: the statement committed on its own
    assert [line[1] for line in await _lines(db)] == ["INV-2"]


async def test_a_batch_of_column_arrays_is_inserted_row_by_row_with_its_conflict_rule(db: PlumbingDb) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(_LEDGER_LINES))
    rows = [
        ("INV-1", Decimal("4820.00"), date(2026, 3, 31), "disputed,vip"),
        ("INV-2", Decimal("0.50"), None, ""),
    ]
    async with db.sessions() as session:
        apg = await raw_connection(session)
        first = await _INSERT_LINES.fetch(apg, column_arrays(rows, 4), "acme")
        again = await _INSERT_LINES.fetch(apg, column_arrays([rows[0], ("INV-3", Decimal(1), None, "x")], 4), "acme")
        assert await _INSERT_LINES.execute(apg, column_arrays([], 4), "acme") == "INSERT 0 0"
        await session.commit()
    assert sorted(r["invoice_id"] for r in first) == ["INV-1", "INV-2"]
    assert [r["invoice_id"] for r in again] == ["INV-3"]  # INV-1 is there already: left as it was
    assert await _lines(db) == [
        ("acme", "INV-1", Decimal("4820.00"), date(2026, 3, 31), ["disputed", "vip"], True),
        ("acme", "INV-2", Decimal("0.50"), None, [], True),
        ("acme", "INV-3", Decimal(1), None, ["x"], True),
    ]


async def test_unnest_with_ordinality_numbers_the_rows_in_array_order(db: PlumbingDb) -> None:
    async with db.sessions() as session:
        apg = await raw_connection(session)
        rows = await apg.fetch(
            f"SELECT * FROM {unnest([('invoice_id', 'text'), ('amount', 'int8')], first=2, ordinality='ord')} "
            "WHERE $1::bool ORDER BY u.invoice_id",
            True,
            ["INV-b", "INV-a"],
            [2, 1],
        )
    assert [tuple(r) for r in rows] == [("INV-a", 1, 2), ("INV-b", 2, 1)]
