"""The statements of the call log: store a logged call (and its contact attempts, so the caps count it), and read
the conversations whose 7-day hold still runs for the timer's batch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg

from policy_engine.adapters.repository import record_contact_attempts
from policy_engine.domain.conversations import CALL_CHANNELS

CALL_CHANNEL = next(iter(CALL_CHANNELS))


def attempt_id(call_id: str) -> str:
    """The contact attempt's delivery id: never one of the notifier's (those are UUIDs without a prefix)."""
    return f"call:{call_id}"


async def insert_call(
    apg: asyncpg.Connection, tenant_id: str, customer_id: str, call_id: str, outcome: str, at: datetime,
    invoice_ids: Sequence[str], note: str | None, logged_by: str | None, now: datetime,
) -> None:  # fmt: skip
    await apg.execute(
        "INSERT INTO calls (tenant_id, call_id, customer_id, outcome, at, invoice_ids, note, logged_by, logged_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        tenant_id, call_id, customer_id, outcome, at, list(invoice_ids), note, logged_by, now,
    )  # fmt: skip
    await record_contact_attempts(apg, tenant_id, customer_id, attempt_id(call_id), CALL_CHANNEL, invoice_ids, at)


async def conversations_since(
    apg: asyncpg.Connection, keys: Iterable[tuple[str, str]], since: datetime, until: datetime
) -> list[asyncpg.Record]:
    """(tenant_id, invoice_id, at) of every conversation about the customers' invoices in (since, until]."""
    keys = list(set(keys))
    if not keys:
        return []
    tenants, customers = zip(*keys, strict=True)
    rows: list[asyncpg.Record] = await apg.fetch(
        "SELECT c.tenant_id, i.invoice_id, c.at FROM calls c CROSS JOIN LATERAL unnest(c.invoice_ids) AS i(invoice_id) "
        "WHERE (c.tenant_id, c.customer_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
        "AND c.outcome = 'conversation' AND c.at > $3 AND c.at <= $4",
        list(tenants), list(customers), since, until,
    )  # fmt: skip
    return rows
