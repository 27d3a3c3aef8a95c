"""What an erasure (customer.erased) leaves in the notifier, as pure rules: the reason a delivery is not made,
and the one-way form a suppressed address keeps so an opt-out is still honoured without the address in clear."""

from __future__ import annotations

import hashlib

# Why a delivery of an erased customer is cancelled or skipped (the delivery's error, notification.skipped).
ERASED_SKIP = "personal data erased: the customer is not contacted any more"
ERASED_TEXT = "[erased]"
DIGEST_PREFIX = "sha256:"


def address_digest(tenant_id: str, kind: str, address: str) -> str:
    """The suppression list's key for an erased customer's address: the opt-out (a STOP reply, an unsubscribe,
    a hard bounce) still holds if that address turns up again, and the list no longer shows it."""
    return DIGEST_PREFIX + hashlib.sha256(f"{tenant_id}|{kind}|{address}".encode()).hexdigest()
