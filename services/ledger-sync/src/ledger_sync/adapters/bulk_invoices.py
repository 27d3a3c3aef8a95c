"""The bulk fast path for NEW invoices: COPY into a staging table, then one statement inserts them and
writes each one's `invoice.created` into the outbox, the event JSON built by PostgreSQL.

Why: at 100,000 invoices, building and encoding one pydantic envelope per invoice and binding every
parameter through the ORM cost more CPU than everything else together; here Python only hands over
tuples. The JSON is the same envelope `dunning_events.codec.encode` writes (a test decodes both and
compares), and existing invoices never come here (they are diffed in Python: invoice.updated).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.money import minor_units
from dunning_events.topics import LEDGER
from dunning_events.tracing import current_trace_headers
from ledger_sync.domain.ledger import InvoiceTerms

STAGE = "ledger_sync_new_invoices"
_COLUMNS = ("ord", "invoice_id", "customer_id", "number", "currency", "total_minor", "exponent", "issue_date",
            "due_date", "terms", "erp_updated_at")  # fmt: skip
_CREATE = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGE} (
  ord int, invoice_id text, customer_id text, number text, currency text, total_minor bigint, exponent int,
  issue_date date, due_date date, terms text, erp_updated_at timestamptz
) ON COMMIT DELETE ROWS
"""
_MONEY = "round(total_minor::numeric / power(10::numeric, exponent), exponent)::text"
_INSERT = f"""
WITH ins AS (
  INSERT INTO invoices (tenant_id, invoice_id, customer_id, number, currency, total_minor, balance_minor,
                        cancelled_minor, issue_date, due_date, terms, status, disputed, source, erp_updated_at,
                        updated_at)
  SELECT :tenant, invoice_id, customer_id, number, currency, total_minor, total_minor, 0, issue_date, due_date,
         terms, CASE WHEN total_minor = 0 THEN 'paid' ELSE 'open' END, false, :source, erp_updated_at, :now
  FROM {STAGE} ORDER BY ord
  ON CONFLICT DO NOTHING
  RETURNING invoice_id, status
), created AS (
  SELECT s.*, ins.status, gen_random_uuid() AS event_id FROM ins JOIN {STAGE} s USING (invoice_id)
), ev AS (
  INSERT INTO outbox (event_id, event_type, topic, key, payload, headers)
  SELECT event_id, 'invoice.created', CAST(:topic AS text), CAST(:tenant AS text) || ':' || customer_id,
         convert_to(json_build_object(
           'id', event_id, 'type', 'invoice.created', 'schema_version', 1, 'source', 'ledger-sync',
           'occurred_at', CAST(:occurred_at AS text), 'tenant_id', CAST(:tenant AS text), 'subject', invoice_id,
           'correlation_id', CAST(:correlation AS text), 'causation_id', NULL,
           'data', json_build_object(
             'customer_id', customer_id, 'invoice_id', invoice_id, 'number', number, 'currency', currency,
             'total', {_MONEY}, 'balance', {_MONEY},
             'issue_date', to_char(issue_date, 'YYYY-MM-DD'), 'due_date', to_char(due_date, 'YYYY-MM-DD'),
             'terms', terms, 'status', status, 'disputed', false)
         )::text, 'UTF8'),
         CAST(:headers AS jsonb)
  FROM created ORDER BY ord
  RETURNING 1
)
SELECT invoice_id FROM ins
"""

_INSTANT = TypeAdapter(datetime)


async def insert_new_invoices(
    session: AsyncSession,
    *,
    tenant_id: str,
    source: str,
    new: Sequence[tuple[InvoiceTerms, datetime | None]],
    now: datetime,
    correlation_id: uuid.UUID,
    wake: Any = None,
) -> set[str]:
    """Insert the invoices that do not exist yet (terms and ERP change stamp), with their invoice.created
    events; returns the ids inserted."""
    if not new:
        return set()
    conn = await session.connection()
    await conn.execute(text(_CREATE))
    await conn.execute(text(f"TRUNCATE {STAGE}"))
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    exponent = {currency: minor_units(currency) for currency in {t.currency for t, _ in new}}
    records = [
        (n, t.invoice_id, t.customer_id, t.number, t.currency, t.total, exponent[t.currency], t.issue_date,
         t.due_date, t.terms, stamp)
        for n, (t, stamp) in enumerate(new)
    ]  # fmt: skip
    await driver.copy_records_to_table(STAGE, records=records, columns=_COLUMNS)
    rows = await conn.execute(
        text(_INSERT),
        {
            "tenant": tenant_id,
            "source": source,
            "now": now,
            "topic": LEDGER,
            "occurred_at": _INSTANT.dump_python(now, mode="json"),
            "correlation": str(correlation_id),
            "headers": json.dumps(current_trace_headers()),
        },
    )
    inserted = set(rows.scalars())
    if inserted and wake is not None:
        # Same as OutboxWriter.add: wake the relay once this transaction commits.
        session.info.setdefault("after_commit", []).append(wake)
    return inserted
