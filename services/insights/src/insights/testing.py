"""Seeding the read model directly, for tests of the figures and for the bench: the daily tables derived from the
invoice-level rows exactly as the appliers keep them (the invariant `ar_daily` == invoice_changes joined with
invoices, grouped), and a bulk seed of a large open ledger with COPY."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

AR_DAILY_OF_TENANT = """
INSERT INTO ar_daily (tenant_id, currency, due_date, on_date, amount, open_count)
SELECT c.tenant_id, i.currency, i.due_date, c.on_date, sum(c.amount), sum(c.open_delta)
FROM invoice_changes c JOIN invoices i ON i.tenant_id = c.tenant_id AND i.invoice_id = c.invoice_id
WHERE c.tenant_id = :tenant GROUP BY 1, 2, 3, 4
"""
SALES_DAILY_OF_TENANT = """
INSERT INTO sales_daily (tenant_id, currency, issue_date, amount, invoice_count)
SELECT tenant_id, currency, issue_date, sum(total), count(*) FROM invoices
WHERE tenant_id = :tenant AND status <> 'void' GROUP BY 1, 2, 3
"""


async def rebuild_daily(conn: AsyncConnection | AsyncSession, tenant_id: str) -> None:
    """ar_daily and sales_daily of a tenant recomputed from its invoices and their changes."""
    for sql in ("DELETE FROM ar_daily WHERE tenant_id = :tenant", "DELETE FROM sales_daily WHERE tenant_id = :tenant",
                AR_DAILY_OF_TENANT, SALES_DAILY_OF_TENANT):  # fmt: skip
        await conn.execute(text(sql), {"tenant": tenant_id})


def asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def seed_open_ledger(
    database_url: str,
    tenant_id: str,
    *,
    invoices: int = 1_000_000,
    months: int = 18,
    today: date,
    customers: int = 50_000,
    seed: int = 15,
    schema: str = "insights",
) -> None:
    """`invoices` open invoices issued over the last `months` months (net 30, in EUR and USD, one in five partly
    paid), `customers` customers in five segments, and the daily tables derived from them; loaded with COPY.

    The shape the tenant-level aging and DSO p95 is measured on (bench key `insights_aging_p95_ms` /
    `insights_dso_p95_ms`): what they read grows with days x due dates, not with invoices."""
    rng = random.Random(seed)
    span = months * 30
    customer_rows = [
        (tenant_id, f"C-{n}", f"Customer {n}", f"segment-{n % 5}", "EUR", "net30", False) for n in range(customers)
    ]
    invoice_rows = []
    change_rows = []
    for n in range(invoices):
        issued = today - timedelta(days=rng.randrange(span))
        due = issued + timedelta(days=30)
        currency = "EUR" if n % 4 else "USD"
        total = Decimal(rng.randrange(5_000, 1_000_000)) / 100
        balance = total
        invoice_id = f"INV-{n:07d}"
        change_rows.append((tenant_id, invoice_id, "issue", "issue", issued, total, 1))
        if n % 5 == 0:
            paid = (total / 2).quantize(Decimal("0.01"))
            on = min(today, issued + timedelta(days=rng.randrange(1, 60)))
            change_rows.append((tenant_id, invoice_id, f"payment:P-{n}", "payment", on, -paid, 0))
            balance = total - paid
        invoice_rows.append((tenant_id, invoice_id, f"C-{rng.randrange(customers)}", f"N{n}", currency, total,
                             balance, issued, due, "net30", "open", False, 1))  # fmt: skip
    conn = await asyncpg.connect(asyncpg_dsn(database_url), server_settings={"search_path": schema})
    try:
        await conn.copy_records_to_table(
            "customers",
            records=customer_rows,
            columns=["tenant_id", "customer_id", "name", "segment", "currency", "terms", "erased"],
        )
        await conn.copy_records_to_table(
            "invoices",
            records=invoice_rows,
            columns=["tenant_id", "invoice_id", "customer_id", "number", "currency", "total", "balance",
                     "issue_date", "due_date", "terms", "status", "disputed", "ledger_version"],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "invoice_changes",
            records=change_rows,
            columns=["tenant_id", "invoice_id", "change_key", "kind", "on_date", "amount", "open_delta"],
        )
        for sql in (AR_DAILY_OF_TENANT, SALES_DAILY_OF_TENANT):
            await conn.execute(sql.replace(":tenant", "$1"), tenant_id)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
