"""The ledger's export pages (customers, invoices with their history): one SQL statement per page, the JSON
of every item built by PostgreSQL.

Why in SQL: a backfill reads every invoice of a tenant (hundreds of thousands), each with its payments, credits,
close and dispute periods. Aggregating them per invoice with LATERAL + json_agg in the page's one statement, and
letting PostgreSQL write each item's JSON, leaves Python only the joining of the items (a pydantic model per
item and its nested lists cost more than the database's work). The JSON is exactly what the response models of
entrypoints/schemas.py (`ExportInvoice`, `ExportCustomer`) serialise to: the money a decimal string with the
currency's decimals, instants in UTC as `...Z`, as pydantic writes them; tests/test_exports.py validates every
item with the model and compares it with the model's own serialisation.

Keyset on the id (the primary key's order after tenant_id): a walk while writes happen serves every row that
existed when it began exactly once.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.bulk import raw_connection
from dunning_events.money import ISO_CURRENCIES, minor_units
from dunning_kit.pages import CursorCodec

CUSTOMERS = CursorCodec("ledger.export.customers")
INVOICES = CursorCodec("ledger.export.invoices")

# The currency's decimals as one CASE (2 unless ISO 4217 says otherwise), generated from dunning_events.money.
_ODD = sorted((c, minor_units(c)) for c in ISO_CURRENCIES if minor_units(c) != 2)
assert all(c.isalpha() and c.isupper() and len(c) == 3 for c, _ in _ODD)  # safe to inline as SQL literals
_EXPONENT = "CASE currency " + " ".join(f"WHEN '{c}' THEN {e}" for c, e in _ODD) + " ELSE 2 END"


def _money(minor: str) -> str:
    """A minor-unit column as the decimal string from_minor writes (`10.00`, `1000` for JPY)."""
    return f"round({minor}::numeric / power(10::numeric, i.exponent), i.exponent)::text"


def _instant(column: str) -> str:
    """A timestamptz as pydantic writes a UTC datetime: seconds, microseconds only when there are some, `Z`."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN date_part('microseconds', {utc})::bigint % 1000000 = 0 THEN '' ELSE to_char({utc}, '.US') END"
        " || 'Z' END"
    )


_INVOICES = f"""
SELECT i.invoice_id, json_build_object(
  'invoice_id', i.invoice_id, 'customer_id', i.customer_id, 'number', i.number, 'currency', i.currency,
  'total', {_money("i.total_minor")}, 'balance', {_money("i.balance_minor")},
  'issue_date', i.issue_date, 'due_date', i.due_date, 'terms', i.terms, 'status', i.status,
  'disputed', i.disputed, 'version', i.version,
  'payments', COALESCE(p.items, '[]'::json),
  'credits', COALESCE(c.items, '[]'::json),
  'closed', CASE WHEN i.closed_at IS NULL THEN NULL ELSE json_build_object(
    'status', CASE WHEN i.status = 'void' THEN 'void' ELSE 'written_off' END,
    'closed_at', {_instant("i.closed_at")}, 'amount', {_money("i.closed_minor")}) END,
  'disputes', COALESCE(d.items, '[]'::json)
)::text
FROM (
  SELECT *, {_EXPONENT} AS exponent FROM invoices
  WHERE tenant_id = $1 AND invoice_id > $2 ORDER BY invoice_id LIMIT $3
) i
LEFT JOIN LATERAL (
  -- what is allocated now, and what a reversal (dated) or a void (never reversed: the stream never said so)
  -- took off the invoice
  SELECT json_agg(json_build_object(
    'payment_id', x.payment_id, 'received_on', pm.received_on, 'amount', {_money("x.amount_minor")},
    'reversed_at', {_instant("x.reversed_at")}) ORDER BY x.payment_id) AS items
  FROM (
    SELECT a.payment_id, a.amount_minor, NULL::timestamptz AS reversed_at FROM allocations a
    WHERE a.tenant_id = i.tenant_id AND a.invoice_id = i.invoice_id
    UNION ALL
    SELECT r.document_id, r.amount_minor, CASE WHEN r.cause = 'reversal' THEN r.released_at END
    FROM released_allocations r
    WHERE r.tenant_id = i.tenant_id AND r.invoice_id = i.invoice_id AND r.document = 'payment'
  ) x JOIN payments pm ON pm.tenant_id = i.tenant_id AND pm.payment_id = x.payment_id
) p ON true
LEFT JOIN LATERAL (
  SELECT json_agg(json_build_object(
    'credit_note_id', x.credit_note_id, 'issued_on', cn.issued_on, 'amount', {_money("x.amount_minor")})
    ORDER BY x.credit_note_id) AS items
  FROM (
    SELECT ca.credit_note_id, ca.amount_minor FROM credit_allocations ca
    WHERE ca.tenant_id = i.tenant_id AND ca.invoice_id = i.invoice_id
    UNION ALL
    SELECT r.document_id, r.amount_minor FROM released_allocations r
    WHERE r.tenant_id = i.tenant_id AND r.invoice_id = i.invoice_id AND r.document = 'credit_note'
  ) x JOIN credit_notes cn ON cn.tenant_id = i.tenant_id AND cn.credit_note_id = x.credit_note_id
) c ON true
LEFT JOIN LATERAL (
  SELECT json_agg(json_build_object(
    'opened_at', {_instant("ds.opened_at")}, 'resolved_at', {_instant("ds.resolved_at")}) ORDER BY ds.opened_at)
    AS items
  FROM invoice_disputes ds WHERE ds.tenant_id = i.tenant_id AND ds.invoice_id = i.invoice_id
) d ON true
ORDER BY i.invoice_id
"""

_CUSTOMERS = """
SELECT c.customer_id, json_build_object(
  'customer_id', c.customer_id, 'name', c.name, 'segment', c.segment, 'erased', t.customer_id IS NOT NULL
)::text
FROM customers c
LEFT JOIN customer_tombstones t ON t.tenant_id = c.tenant_id AND t.customer_id = c.customer_id
WHERE c.tenant_id = $1 AND c.customer_id > $2
ORDER BY c.customer_id LIMIT $3
"""


async def _page(
    session: AsyncSession, sql: str, codec: CursorCodec, tenant_id: str, limit: int, cursor: str | None
) -> bytes:
    """The page's JSON body (`{"items": [...], "next_cursor": ...}`, the kit's Page), from one statement that
    reads `limit + 1` rows: the extra one says a next page exists."""
    after = codec.decode(cursor, 1)
    driver: Any = await raw_connection(session, in_transaction=False)
    rows = await driver.fetch(sql, tenant_id, after[0] if after else "", limit + 1)
    served = rows[:limit]
    more = len(rows) > limit and bool(served)
    next_cursor = codec.encode((served[-1][0],)) if more else None
    return b"".join(
        (
            b'{"items":[',
            ",".join(r[1] for r in served).encode(),
            b'],"next_cursor":',
            json.dumps(next_cursor).encode(),
            b"}",
        )
    )


async def invoice_page(session: AsyncSession, tenant_id: str, limit: int, cursor: str | None) -> bytes:
    return await _page(session, _INVOICES, INVOICES, tenant_id, limit, cursor)


async def customer_page(session: AsyncSession, tenant_id: str, limit: int, cursor: str | None) -> bytes:
    return await _page(session, _CUSTOMERS, CUSTOMERS, tenant_id, limit, cursor)
