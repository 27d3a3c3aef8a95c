"""customer.erased in the notifier (GDPR Art. 17), applied in the ledger projection's transaction.

Deleted or pseudonymised: the customer's name (the pseudonym), contacts and postal address; every delivery's
recipient, subject, rendered bodies and error text; the provider payloads of its receipts and of the replies
that came from its numbers; its collector tasks'
texts; its suppressed addresses (kept as one-way digests, so the opt-out still holds). Kept: the fact of each
contact (delivery id, channel, step, status, attempts, sent_at), the invoices' money facts and the consent flags.
Deliveries not yet handed to a provider are cancelled, and the customer stays marked `erased_at`, so a step that
arrives later is skipped, never sent (see Composer.decide). Applying it again changes nothing.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope
from dunning_events.events import CustomerErased
from dunning_kit.personal_data import forget_published_events
from notifier.adapters import orm
from notifier.domain.erasure import DIGEST_PREFIX, ERASED_SKIP, ERASED_TEXT, address_digest
from notifier.domain.recipients import InvalidAddress, normalize_email, normalize_phone
from notifier.service_layer.steps import NOT_STARTED

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


def known_addresses(contacts: list[dict[str, Any]], region: str) -> set[str]:
    """The addresses on file, as stored and as the dispatcher normalises them (the suppression list's form)."""
    out: set[str] = set()
    for c in contacts:
        email, phone = c.get("email"), c.get("phone")
        if isinstance(email, str) and email:
            out.add(email)
            with suppress(InvalidAddress):
                out.add(normalize_email(email))
        if isinstance(phone, str) and phone:
            out.add(phone)
            with suppress(InvalidAddress):
                out.add(normalize_phone(phone, region))
    return out


async def on_customer_erased(session: AsyncSession, env: Envelope[CustomerErased]) -> None:
    d = env.data
    keys = {"tenant_id": env.tenant_id, "customer_id": d.customer_id}
    c = orm.customers.c
    held = (
        await session.execute(
            select(c.contacts, c.country).where(c.tenant_id == env.tenant_id, c.customer_id == d.customer_id)
        )
    ).first()
    addresses = known_addresses(list(held.contacts or []), held.country or "US") if held is not None else set()
    addresses |= {
        r
        for (r,) in await session.execute(
            text(
                "SELECT DISTINCT recipient FROM deliveries WHERE tenant_id = :tenant_id AND customer_id = :customer_id "
                "AND recipient IS NOT NULL"
            ),
            keys,
        )
    }
    await session.execute(_CUSTOMER, {**keys, "pseudonym": d.pseudonym, "erased_at": d.erased_at})
    await session.execute(_CANCEL, {**keys, "why": ERASED_SKIP, "not_started": list(NOT_STARTED)})
    await session.execute(_SCRUB_DELIVERIES, {**keys, "why": ERASED_SKIP, "erased": ERASED_TEXT})
    # Inbound replies (a STOP) are tied to no delivery, only to the number they came from.
    await session.execute(_SCRUB_RECEIPTS, {**keys, "addresses": sorted(addresses)})
    await session.execute(_SCRUB_TASKS, {**keys, "erased": ERASED_TEXT})
    await forget_published_events(session, orm.outbox, env.tenant_id, d.customer_id)
    suppressed = (
        await session.execute(_SUPPRESSED, {**keys, "addresses": sorted(addresses), "digest_like": f"{DIGEST_PREFIX}%"})
    ).all()
    for kind, address in suppressed:
        await session.execute(
            text(
                "INSERT INTO suppressions (tenant_id, kind, address, reason, customer_id, detail, created_at) "
                "SELECT tenant_id, kind, :digest, reason, customer_id, NULL, created_at FROM suppressions "
                "WHERE tenant_id = :tenant_id AND kind = :kind AND address = :address ON CONFLICT DO NOTHING"
            ),
            {**keys, "kind": kind, "address": address, "digest": address_digest(env.tenant_id, kind, address)},
        )
        await session.execute(
            text("DELETE FROM suppressions WHERE tenant_id = :tenant_id AND kind = :kind AND address = :address"),
            {**keys, "kind": kind, "address": address},
        )
