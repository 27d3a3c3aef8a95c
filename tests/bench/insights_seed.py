"""A tenant's read model seeded straight into insights' tables with COPY: open invoices over 18 months of history.

The aging and DSO benchmark needs a tenant with 1,000,000 open invoices; replaying that many events through the
stream would take the bench's whole budget before the first figure is asked. So the rows the appliers would have
written are generated here (seeded, so every run has the same book) and COPYed: `customers`, `invoices`,
`invoice_changes` (each invoice's issue, and the payments of the settled and part-paid ones), and the sums the
appliers keep beside them, `ar_daily` (per currency, due date and change date) and `sales_daily` (per currency and
issue date), accumulated from the same changes, so the fast path and the per-invoice path tell the same story.

The book: half as many invoices again are settled history (paid 5-90 days after issue); a fifth of the open ones
are part-paid. Issue dates spread over the 548 days up to `today`, the open ones leaning recent (as a real ledger's
do: old debts get paid or written off); terms 14-60 days; three currencies (EUR, USD, GBP), five segments.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

SCHEMA = "insights"
HISTORY_DAYS = 548  # 18 months
CUSTOMERS = 50_000
SEGMENTS = ("enterprise", "mid-market", "smb", "public", "demo")
TERMS = (14, 30, 30, 45, 60)
CHUNK = 100_000  # invoices per COPY round (their changes go with them)
CENT = Decimal("0.01")


def currency_of(i: int) -> str:
    return "EUR" if i % 10 < 7 else "USD" if i % 10 < 9 else "GBP"


@dataclass
class SeededBook:
    """What was seeded: counts, and the tenant-level sums a figure must agree with."""

    tenant_id: str
    today: date
    open_invoices: int = 0
    settled_invoices: int = 0
    changes: int = 0
    ar_daily: dict[tuple[str, date, date], list[Any]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    sales_daily: dict[tuple[str, date], list[Any]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    seconds: float = 0.0

    def open_balance(self, currency: str) -> Decimal:
        """Σ of every change of the currency: the open receivables today."""
        return sum((v[0] for (c, _, _), v in self.ar_daily.items() if c == currency), Decimal(0))


Row = tuple[Any, ...]


def _invoices(book: SeededBook, start: int, stop: int, rng: random.Random) -> tuple[list[Row], list[Row]]:
    invoices: list[Row] = []
    changes: list[Row] = []
    tenant, today = book.tenant_id, book.today
    for i in range(start, stop):
        currency = currency_of(i)
        settled = i % 3 == 2  # one in three is settled history: exactly two open invoices per settled one
        # Open invoices lean recent (the square of a uniform draw), settled ones spread evenly.
        back = rng.random() if settled else rng.random() ** 2
        issue = today - timedelta(days=int(back * (HISTORY_DAYS - 1)))
        due = issue + timedelta(days=rng.choice(TERMS))
        total = Decimal(rng.randint(5_000, 2_500_000)) * CENT
        invoice_id = f"INV-{i:08d}"
        changes.append((tenant, invoice_id, "issue", "issue", issue, total, 1))
        book.ar_daily[(currency, due, issue)][0] += total
        book.ar_daily[(currency, due, issue)][1] += 1
        book.sales_daily[(currency, issue)][0] += total
        book.sales_daily[(currency, issue)][1] += 1
        balance, settled_on, status = total, None, "open"
        if settled or rng.random() < 0.2:
            paid_on = min(today, issue + timedelta(days=rng.randint(5, 90)))
            paid = total if settled else (total * Decimal("0.3")).quantize(CENT)
            closes = 1 if paid == total else 0
            changes.append((tenant, invoice_id, f"payment:P-{i:08d}", "payment", paid_on, -paid, -closes))
            book.ar_daily[(currency, due, paid_on)][0] -= paid
            book.ar_daily[(currency, due, paid_on)][1] -= closes
            balance -= paid
            if closes:
                settled_on, status = paid_on, "paid"
        if balance:
            book.open_invoices += 1
        else:
            book.settled_invoices += 1
        invoices.append(
            (tenant, invoice_id, f"C-{i % CUSTOMERS:06d}", f"{i:09d}", currency, total, balance, issue, due,
             "net", status, 1, settled_on)
        )  # fmt: skip
    book.changes += len(changes)
    return invoices, changes


INVOICE_COLUMNS = [
    "tenant_id", "invoice_id", "customer_id", "number", "currency", "total", "balance", "issue_date", "due_date",
    "terms", "status", "ledger_version", "settled_on",
]  # fmt: skip
CHANGE_COLUMNS = ["tenant_id", "invoice_id", "change_key", "kind", "on_date", "amount", "open_delta"]


async def seed_open_book(engine: AsyncEngine, *, tenant_id: str, today: date, open_invoices: int) -> SeededBook:
    """COPY a book with `open_invoices` open invoices (and half as many again settled) into insights' tables."""
    started = time.perf_counter()
    rng = random.Random(15)
    book = SeededBook(tenant_id, today)
    total = open_invoices * 3 // 2  # every third is settled; part-paid ones stay open
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_records_to_table(
            "customers",
            schema_name=SCHEMA,
            columns=["tenant_id", "customer_id", "name", "segment", "currency", "terms"],
            records=(
                (tenant_id, f"C-{c:06d}", f"Customer {c}", SEGMENTS[c % len(SEGMENTS)], currency_of(c), "net")
                for c in range(CUSTOMERS)
            ),
        )
        for start in range(0, total, CHUNK):
            invoices, changes = _invoices(book, start, min(total, start + CHUNK), rng)
            await raw.copy_records_to_table("invoices", schema_name=SCHEMA, columns=INVOICE_COLUMNS, records=invoices)
            await raw.copy_records_to_table(
                "invoice_changes", schema_name=SCHEMA, columns=CHANGE_COLUMNS, records=changes
            )
        await raw.copy_records_to_table(
            "ar_daily",
            schema_name=SCHEMA,
            columns=["tenant_id", "currency", "due_date", "on_date", "amount", "open_count"],
            records=_nonzero(((tenant_id, c, d, o, a, n) for (c, d, o), (a, n) in book.ar_daily.items())),
        )
        await raw.copy_records_to_table(
            "sales_daily",
            schema_name=SCHEMA,
            columns=["tenant_id", "currency", "issue_date", "amount", "invoice_count"],
            records=((tenant_id, c, d, a, n) for (c, d), (a, n) in book.sales_daily.items()),
        )
        await conn.commit()
    # As autovacuum would have by the time anyone asks: statistics for the planner, the visibility map for
    # index-only scans.
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("customers", "invoices", "invoice_changes", "ar_daily", "sales_daily"):
            await conn.execute(text(f"VACUUM ANALYZE {SCHEMA}.{table}"))
    book.seconds = time.perf_counter() - started
    return book


def _nonzero(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """A group whose changes cancel out (an invoice paid the day it was issued) is no row, as the applier keeps it."""
    return (r for r in rows if r[4] or r[5])
