"""The bulk fast path for NEW invoices: one statement inserts a batch of them (handed over as column
arrays) and writes each one's `invoice.created` into the outbox, the event's data JSON built by PostgreSQL (its
CloudEvents attributes in the outbox's columns, as OutboxWriter writes them).

Why: at 100,000 invoices, building and encoding one pydantic envelope per invoice and binding every
parameter through the ORM cost more CPU than everything else together; here Python only hands over
tuples. The JSON is the same data `dunning_events.codec.encode` writes (a test decodes both and
compares), and existing invoices never come here (they are diffed in Python: invoice.updated).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.bulk import raw_connection, unnest
from dunning_events.money import minor_units
from dunning_events.topics import LEDGER
from dunning_events.tracing import current_trace_headers
from ledger_sync.domain.ledger import InvoiceTerms

# The batch's columns, one array each ($5..$14), in the order insert_new_invoices passes them.
_COLUMNS = [
    ("invoice_id", "text"), ("customer_id", "text"), ("number", "text"), ("currency", "text"),
    ("total_minor", "bigint"), ("exponent", "int"), ("issue_date", "date"), ("due_date", "date"), ("terms", "text"),
    ("erp_updated_at", "timestamptz"),
]  # fmt: skip
_MONEY = "round(total_minor::numeric / power(10::numeric, exponent), exponent)::text"
# The batch arrives as one array per column ($5..$14) and is unnested in the statement: one round trip
# per batch (a temp staging table filled by COPY took three more, and its TRUNCATE cost as much as the COPY).
_INSERT = f"""
WITH staged AS MATERIALIZED (
  SELECT * FROM {unnest(_COLUMNS, first=5, alias="s", ordinality="ord")}
), ins AS (
  INSERT INTO invoices (tenant_id, invoice_id, customer_id, number, currency, total_minor, balance_minor,
                        cancelled_minor, issue_date, due_date, terms, status, disputed, source, erp_updated_at,
                        updated_at)
  SELECT $1::text, invoice_id, customer_id, number, currency, total_minor, total_minor, 0, issue_date, due_date,
         terms, CASE WHEN total_minor = 0 THEN 'paid' ELSE 'open' END, false, $2, erp_updated_at, $3
  FROM staged ORDER BY ord
  ON CONFLICT DO NOTHING
  RETURNING invoice_id, status
), created AS (
  SELECT s.*, ins.status, gen_random_uuid() AS event_id FROM ins JOIN staged s USING (invoice_id)
), ev AS (
  INSERT INTO outbox (event_id, event_type, topic, key, payload, headers, source, occurred_at, subject, schema_version,
                      tenant_id, correlation_id, causation_id)
  SELECT event_id, 'invoice.created', '{LEDGER}', $1::text || ':' || customer_id,
         convert_to(json_build_object(
           'customer_id', customer_id, 'invoice_id', invoice_id, 'number', number, 'currency', currency,
           'total', {_MONEY}, 'balance', {_MONEY},
           'issue_date', to_char(issue_date, 'YYYY-MM-DD'), 'due_date', to_char(due_date, 'YYYY-MM-DD'),
           'terms', terms, 'status', status, 'disputed', false, 'version', 1
         )::text, 'UTF8'),
         $16::jsonb, 'ledger-sync', $4::text, invoice_id, 1, $1::text, $15::uuid, NULL
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
    driver = await raw_connection(session)
    exponent = {currency: minor_units(currency) for currency in {t.currency for t, _ in new}}
    ids, customers, numbers, currencies, totals, issued, due, payment_terms = (
        list(c) for c in zip(*(t for t, _ in new), strict=True)
    )
    rows = await driver.fetch(
        _INSERT,
        tenant_id,
        source,
        now,
        _INSTANT.dump_python(now, mode="json"),
        ids,
        customers,
        numbers,
        currencies,
        totals,
        [exponent[c] for c in currencies],
        issued,
        due,
        payment_terms,
        [stamp for _, stamp in new],
        str(correlation_id),
        json.dumps(current_trace_headers()),
    )
    inserted = {r[0] for r in rows}
    if inserted and wake is not None:
        # Same as OutboxWriter.add: wake the relay once this transaction commits.
        session.info.setdefault("after_commit", []).append(wake)
    return inserted
