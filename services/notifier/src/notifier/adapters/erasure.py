"""Erasing a customer (customer.erased) in SQL: what the notifier holds about the person is pseudonymised,
cleared or kept as a digest (service_layer/erasure.py says what and why). Every statement is idempotent:
applying the erasure again changes nothing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.adapters import orm

_CUSTOMER = text(
    """
    INSERT INTO customers (tenant_id, customer_id, name, contacts, postal_address, erased_at)
    VALUES (:tenant_id, :customer_id, :pseudonym, '[]'::jsonb, NULL, :erased_at)
    ON CONFLICT (tenant_id, customer_id) DO UPDATE
    SET name = CASE WHEN customers.erased_at IS NULL THEN EXCLUDED.name ELSE customers.name END,
        contacts = '[]'::jsonb, postal_address = NULL,
        erased_at = COALESCE(customers.erased_at, EXCLUDED.erased_at)
    """
)

# Not handed to a provider yet: cancelled (a claimed row's send gate then finds it no longer claimed).
_CANCEL = text(
    """
    UPDATE deliveries SET status = 'cancelled', error = :why, claimed_until = NULL, updated_at = now()
    WHERE tenant_id = :tenant_id AND customer_id = :customer_id AND status = ANY(:not_started)
    """
)

_SCRUB_DELIVERIES = text(
    """
    UPDATE deliveries
    SET recipient = NULL, subject = NULL, body_text = NULL, body_html = NULL, rendered_at = NULL,
        error = CASE WHEN error = :why THEN error WHEN error IS NULL THEN NULL ELSE :erased END
    WHERE tenant_id = :tenant_id AND customer_id = :customer_id
      AND (recipient IS NOT NULL OR subject IS NOT NULL OR body_text IS NOT NULL OR body_html IS NOT NULL
           OR (error IS NOT NULL AND error <> :why AND error <> :erased))
    """
)

_SCRUB_RECEIPTS = text(
    """
    UPDATE receipts SET payload = '{}'::jsonb
    WHERE payload <> '{}'::jsonb
      AND (delivery_id IN (SELECT id FROM deliveries WHERE tenant_id = :tenant_id AND customer_id = :customer_id)
           OR (delivery_id IS NULL AND payload ->> 'From' = ANY(:addresses)))
    """
)

_SCRUB_TASKS = text(
    """
    UPDATE collector_tasks SET title = :erased, body = :erased, details = '{}'::jsonb, note = NULL
    WHERE tenant_id = :tenant_id AND customer_id = :customer_id AND body <> :erased
    """
)

# The customer's suppressed addresses: its own rows, and any row for an address it was messaged at or has on file.
_SUPPRESSED = text(
    """
    SELECT kind, address FROM suppressions
    WHERE tenant_id = :tenant_id AND address NOT LIKE :digest_like
      AND (customer_id = :customer_id OR address = ANY(:addresses))
    FOR UPDATE
    """
)


_MESSAGED_AT = text(
    "SELECT DISTINCT recipient FROM deliveries WHERE tenant_id = :tenant_id AND customer_id = :customer_id "
    "AND recipient IS NOT NULL"
)
_DIGEST_SUPPRESSION = text(
    "INSERT INTO suppressions (tenant_id, kind, address, reason, customer_id, detail, created_at) "
    "SELECT tenant_id, kind, :digest, reason, customer_id, NULL, created_at FROM suppressions "
    "WHERE tenant_id = :tenant_id AND kind = :kind AND address = :address ON CONFLICT DO NOTHING"
)
_DELETE_SUPPRESSION = text(
    "DELETE FROM suppressions WHERE tenant_id = :tenant_id AND kind = :kind AND address = :address"
)


async def contacts_on_file(
    session: AsyncSession, tenant_id: str, customer_id: str
) -> tuple[list[Any], str | None] | None:
    """The customer's (contacts, country) as projected; None for a customer never upserted."""
    c = orm.customers.c
    held = (
        await session.execute(
            select(c.contacts, c.country).where(c.tenant_id == tenant_id, c.customer_id == customer_id)
        )
    ).first()
    return (list(held.contacts or []), held.country) if held is not None else None


async def addresses_messaged(session: AsyncSession, tenant_id: str, customer_id: str) -> set[str]:
    keys = {"tenant_id": tenant_id, "customer_id": customer_id}
    return {r for (r,) in await session.execute(_MESSAGED_AT, keys)}


async def pseudonymise_customer(
    session: AsyncSession, tenant_id: str, customer_id: str, pseudonym: str, erased_at: datetime
) -> None:
    keys = {"tenant_id": tenant_id, "customer_id": customer_id}
    await session.execute(_CUSTOMER, {**keys, "pseudonym": pseudonym, "erased_at": erased_at})


async def cancel_customer_deliveries(
    session: AsyncSession, tenant_id: str, customer_id: str, statuses: Iterable[str], why: str
) -> None:
    keys = {"tenant_id": tenant_id, "customer_id": customer_id}
    await session.execute(_CANCEL, {**keys, "why": why, "not_started": list(statuses)})


async def scrub_deliveries(session: AsyncSession, tenant_id: str, customer_id: str, why: str, erased: str) -> None:
    """Recipient, subject and bodies cleared; an error text replaced by `erased` unless it is `why`."""
    keys = {"tenant_id": tenant_id, "customer_id": customer_id}
    await session.execute(_SCRUB_DELIVERIES, {**keys, "why": why, "erased": erased})


async def scrub_receipts(session: AsyncSession, tenant_id: str, customer_id: str, addresses: Iterable[str]) -> None:
    """Payloads of the customer's deliveries' receipts, and of inbound replies (a STOP) from these addresses:
    those are tied to no delivery, only to the number they came from."""
    keys = {"tenant_id": tenant_id, "customer_id": customer_id}
    await session.execute(_SCRUB_RECEIPTS, {**keys, "addresses": sorted(addresses)})


async def scrub_tasks(session: AsyncSession, tenant_id: str, customer_id: str, erased: str) -> None:
    keys = {"tenant_id": tenant_id, "customer_id": customer_id}
    await session.execute(_SCRUB_TASKS, {**keys, "erased": erased})


async def suppressed_in_clear(
    session: AsyncSession, tenant_id: str, customer_id: str, addresses: Iterable[str], digest_like: str
) -> list[tuple[str, str]]:
    """(kind, address) of the customer's suppressions not yet kept as digests (`digest_like`), locked."""
    keys = {"tenant_id": tenant_id, "customer_id": customer_id}
    rows = await session.execute(_SUPPRESSED, {**keys, "addresses": sorted(addresses), "digest_like": digest_like})
    return [(kind, address) for kind, address in rows.all()]


async def replace_with_digest(
    session: AsyncSession, tenant_id: str, customer_id: str, kind: str, address: str, digest: str
) -> None:
    """The suppression kept under its digest (the opt-out still holds), the address in clear deleted."""
    keys = {"tenant_id": tenant_id, "customer_id": customer_id, "kind": kind, "address": address}
    await session.execute(_DIGEST_SUPPRESSION, {**keys, "digest": digest})
    await session.execute(_DELETE_SUPPRESSION, keys)
