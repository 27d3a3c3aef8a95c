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

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope
from dunning_events.events import CustomerErased
from dunning_kit.personal_data import forget_published_events
from notifier.adapters import erasure, orm
from notifier.domain.erasure import DIGEST_PREFIX, ERASED_SKIP, ERASED_TEXT, address_digest
from notifier.domain.recipients import InvalidAddress, normalize_email, normalize_phone
from notifier.service_layer.steps import NOT_STARTED


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
    tenant_id, customer_id = env.tenant_id, d.customer_id
    held = await erasure.contacts_on_file(session, tenant_id, customer_id)
    addresses = known_addresses(held[0], held[1] or "US") if held is not None else set()
    addresses |= await erasure.addresses_messaged(session, tenant_id, customer_id)
    await erasure.pseudonymise_customer(session, tenant_id, customer_id, d.pseudonym, d.erased_at)
    # Not handed to a provider yet: cancelled (a claimed row's send gate then finds it no longer claimed).
    await erasure.cancel_customer_deliveries(session, tenant_id, customer_id, NOT_STARTED, ERASED_SKIP)
    await erasure.scrub_deliveries(session, tenant_id, customer_id, ERASED_SKIP, ERASED_TEXT)
    await erasure.scrub_receipts(session, tenant_id, customer_id, addresses)
    await erasure.scrub_tasks(session, tenant_id, customer_id, ERASED_TEXT)
    await forget_published_events(session, orm.outbox, tenant_id, customer_id)
    for kind, address in await erasure.suppressed_in_clear(
        session, tenant_id, customer_id, addresses, f"{DIGEST_PREFIX}%"
    ):
        await erasure.replace_with_digest(
            session, tenant_id, customer_id, kind, address, address_digest(tenant_id, kind, address)
        )
