"""What of a customer is personal data, what an erasure leaves of it, and how an erased customer's later
records are kept erased (the tombstone rule). Pure: no database, no web.

Erased (GDPR Art. 17): the name (replaced by the pseudonym), every contact (names, e-mail addresses, phone
numbers), the free-text tags, the raw ERP payloads that mention the customer and the free-text notes on its
documents (dispute reasons, reversal reasons).
Kept: the customer id (the money facts refer to it), the money facts themselves (invoices, payments, credit
notes, allocations, balances: accounting records the tenant must keep), and the operational settings that
identify no one (time zone, locale, country, segment, consent per channel, credit hold).
"""

from __future__ import annotations

import re
import secrets

from ledger_sync.domain.records import CustomerRecord

PSEUDONYM_PREFIX = "erased-"

# A customer id is the ERP's own id (at most 200 characters, see records.CustomerRecord); anything else in the
# path is refused before a query runs.
MAX_CUSTOMER_ID_LENGTH = 200

# Where each connector's raw objects name their customer, as key paths into the payload: QuickBooks
# `CustomerRef.value`, Stripe `customer` (an id, or the expanded object's `id`), Xero `Contact.ContactID` (a
# payment's under `Invoice`), NetSuite `entity` (invoices) and `customer.id` (payments). A customer object itself
# is found by its own id. A raw payload "mentions" a customer when it is the customer or names it at one of these.
ERP_CUSTOMER_REFERENCES: tuple[tuple[str, ...], ...] = (
    ("CustomerRef", "value"),
    ("customer",),
    ("customer", "id"),
    ("Contact", "ContactID"),
    ("Invoice", "Contact", "ContactID"),
    ("entity",),
    ("entity", "id"),
)

_PSEUDONYM = re.compile(rf"^{PSEUDONYM_PREFIX}[0-9a-f]{{12}}$")


def new_pseudonym() -> str:
    """A name that identifies no one: random (not derived from the id, which anyone with the ledger knows)."""
    return PSEUDONYM_PREFIX + secrets.token_hex(6)


def is_pseudonym(name: str) -> bool:
    return bool(_PSEUDONYM.match(name))


def customer_id_problem(customer_id: str) -> str | None:
    """Why a customer id in a path can name no customer (None when it can)."""
    if not customer_id.strip():
        return "must not be empty"
    if len(customer_id) > MAX_CUSTOMER_ID_LENGTH:
        return f"at most {MAX_CUSTOMER_ID_LENGTH} characters"
    return None


def keep_erased(record: CustomerRecord, pseudonym: str) -> CustomerRecord:
    """The tombstone rule: an erased customer's record as the ledger stores it, whatever door it came through.

    The money facts still flow (they refer to the customer by id); what identifies the person does not come
    back: the name becomes the pseudonym, contacts and the shorthand e-mail/phone are dropped, tags (free text)
    are emptied. The rest (time zone, locale, country, segment, consent, credit hold) is kept as sent.
    """
    return record.model_copy(update={"name": pseudonym, "contacts": [], "email": None, "phone": None, "tags": []})
