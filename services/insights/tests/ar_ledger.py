"""A small ledger written straight into insights' tables for the figure tests: customers, invoices and their
balance changes (open_delta, balance, status and settled_on derived as the appliers derive them), disputes,
and the daily tables rebuilt from them (insights.testing.rebuild_daily)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest_asyncio
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dunning_kit.db import make_engine, make_sessions
from dunning_kit.testing import PostgresBackend
from insights.adapters.orm import customers, disputes, invoice_changes, invoices
from insights.testing import rebuild_daily

CLOSING = {"void": "void", "write_off": "written_off"}


@dataclass
class Ledger:
    tenant_id: str
    customer_rows: list[dict[str, Any]] = field(default_factory=list)
    invoice_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    changes: dict[str, list[tuple[str, str, date, Decimal]]] = field(default_factory=dict)
    dispute_rows: list[dict[str, Any]] = field(default_factory=list)

    def customer(self, customer_id: str, segment: str | None = None) -> None:
        self.customer_rows.append({"tenant_id": self.tenant_id, "customer_id": customer_id, "name": customer_id,
                                   "segment": segment})  # fmt: skip

    def invoice(self, invoice_id: str, customer_id: str, total: str, issued: date, due: date | None = None,
                currency: str = "EUR") -> None:  # fmt: skip
        self.invoice_rows[invoice_id] = {
            "tenant_id": self.tenant_id, "invoice_id": invoice_id, "customer_id": customer_id, "number": invoice_id,
            "currency": currency, "total": Decimal(total), "issue_date": issued, "due_date": due or issued,
        }  # fmt: skip
        self.changes[invoice_id] = [("issue", "issue", issued, Decimal(total))]

    def change(self, invoice_id: str, kind: str, on: date, amount: str, key: str | None = None) -> None:
        """A signed change (+ raises the balance); payment/credit/void/write_off amounts are given positive."""
        signed = Decimal(amount) if kind == "reversal" else -Decimal(amount)
        self.changes[invoice_id].append((key or f"{kind}:{len(self.changes[invoice_id])}", kind, on, signed))

    def dispute(self, invoice_id: str, opened_at: datetime, resolved_at: datetime | None = None) -> None:
        self.dispute_rows.append({"tenant_id": self.tenant_id, "invoice_id": invoice_id, "opened_at": opened_at,
                                  "resolved_at": resolved_at})  # fmt: skip

    async def write(self, session: AsyncSession) -> None:
        change_rows = []
        for invoice_id, row in self.invoice_rows.items():
            balance, status, settled, closed = Decimal(0), "open", None, None
            for key, kind, on, amount in sorted(self.changes[invoice_id], key=lambda c: c[2]):
                before, balance = balance, balance + amount
                delta = 1 if before == 0 and balance != 0 else -1 if before != 0 and balance == 0 else 0
                if kind in CLOSING:
                    status, closed = CLOSING[kind], on
                elif balance == 0 and kind in ("payment", "credit", "prior"):
                    status, settled = "paid", on
                elif balance != 0 and kind == "reversal":
                    status, settled = "open", None
                change_rows.append({"tenant_id": self.tenant_id, "invoice_id": invoice_id, "change_key": key,
                                    "kind": kind, "on_date": on, "amount": amount, "open_delta": delta})  # fmt: skip
            row.update(balance=balance, status=status, settled_on=settled, closed_on=closed)
        if self.customer_rows:
            await session.execute(insert(customers), self.customer_rows)
        if self.invoice_rows:
            await session.execute(insert(invoices), list(self.invoice_rows.values()))
            await session.execute(insert(invoice_changes), change_rows)
        if self.dispute_rows:
            await session.execute(insert(disputes), self.dispute_rows)
        await rebuild_daily(session, self.tenant_id)


@pytest_asyncio.fixture(scope="module")
async def figures_db(pg_backend: PostgresBackend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """One database for a module of figure tests; each test seeds a tenant of its own."""
    engine: AsyncEngine = make_engine(pg_backend.fresh_database(), "insights", pool_size=2)
    try:
        yield make_sessions(engine)
    finally:
        await engine.dispose()


async def seed(sessions: async_sessionmaker[AsyncSession], ledger: Ledger) -> None:
    async with sessions() as session, session.begin():
        await ledger.write(session)
