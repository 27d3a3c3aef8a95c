"""Set-wise SQL for the hot paths: the asyncpg connection under a SQLAlchemy session, and batches of rows that
travel as one array per column.

Why: at thousands of rows per batch (a CSV import, a consumer applying a batch, the relay, the timers), the
per-row Python of SQLAlchemy (a parameter dict per row, a result object per row) costs more than the database
work; asyncpg encodes a list per column in C and the statement is one round trip and one cached plan whatever
the batch's size. Everything here is per batch, never per row: the statements are built once, at import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

_BEGIN = text("SELECT 1")


async def raw_connection(db: AsyncSession | AsyncConnection, *, in_transaction: bool = True) -> Any:
    """The asyncpg connection under `db` (typed Any: asyncpg ships no type information).

    `in_transaction`: inside `db`'s transaction, begun first if it was not yet. SQLAlchemy's asyncpg adapter
    begins lazily, at its first statement, so a raw statement before any SQLAlchemy one would otherwise run
    outside the transaction and commit on its own. False is for what must stay outside any transaction: LISTEN
    (notifications arrive only between transactions) and single statements meant to commit on their own.
    """
    conn = await db.connection() if isinstance(db, AsyncSession) else db
    fairy = await conn.get_raw_connection()
    if in_transaction and getattr(fairy.dbapi_connection, "_transaction", None) is None:
        await conn.execute(_BEGIN)
    return fairy.driver_connection


def unnest(
    columns: Sequence[tuple[str, str]], *, first: int = 1, alias: str = "u", ordinality: str | None = None
) -> str:
    """`unnest($1::text[], $2::int8[]) AS u(a, b)`: the FROM item that turns one array per column back into
    rows; `columns` are (name, PostgreSQL type) in parameter order, numbered from `$first`. `ordinality` names
    a last column holding each row's position in the arrays (WITH ORDINALITY)."""
    arrays = ", ".join(f"${n}::{pg_type}[]" for n, (_, pg_type) in enumerate(columns, start=first))
    names = [name for name, _ in columns] + ([ordinality] if ordinality else [])
    return f"unnest({arrays}){' WITH ORDINALITY' if ordinality else ''} AS {alias}({', '.join(names)})"


@dataclass(frozen=True)
class ArrayInsert:
    """`INSERT INTO table (...) SELECT ... FROM unnest($k::type[], ...) AS u(...) <tail>`: a batch of rows
    handed over as one array per column.

    columns: (column, PostgreSQL type) of the arrays, in the order they are passed.
    values: the SELECT's expression for a column where it is not `u.<column>` (a cast, `string_to_array(...)`),
        and columns that come from no array (`"$1"` for a scalar parameter, a constant); those go first.
    scalars: how many scalar parameters ($1..$scalars) come before the arrays.
    tail: what follows the SELECT (ON CONFLICT ..., RETURNING ...).
    """

    table: str
    columns: Sequence[tuple[str, str]]
    values: Mapping[str, str] = field(default_factory=dict)
    scalars: int = 0
    tail: str = ""
    sql: str = field(init=False)

    def __post_init__(self) -> None:
        arrays = [name for name, _ in self.columns]
        targets = [*(c for c in self.values if c not in arrays), *arrays]
        select = ", ".join(self.values.get(c, f"u.{c}") for c in targets)
        sql = (
            f"INSERT INTO {self.table} ({', '.join(targets)}) SELECT {select} "
            f"FROM {unnest(self.columns, first=self.scalars + 1)} {self.tail}"
        )
        object.__setattr__(self, "sql", sql.strip())

    async def execute(self, apg: Any, arrays: Sequence[Sequence[Any]], *scalars: Any) -> str:
        """Run on an asyncpg connection (see raw_connection); returns its status (`INSERT 0 n`)."""
        return str(await apg.execute(self.sql, *scalars, *arrays))

    async def fetch(self, apg: Any, arrays: Sequence[Sequence[Any]], *scalars: Any) -> list[Any]:
        """Run with a RETURNING tail; returns the asyncpg records."""
        return list(await apg.fetch(self.sql, *scalars, *arrays))


def column_arrays(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows (tuples) as one list per column, transposed in C; `width` columns even when there are no rows."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]
