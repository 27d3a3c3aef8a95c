"""The deterministic id of a dunning step: the notifier's idempotency key, the same on every replica and retry."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable

STEP_NAMESPACE = uuid.UUID("6d1f1c1e-6a57-4c59-9a43-5b7f3c1d2e10")
_STEP_NS_BYTES = STEP_NAMESPACE.bytes


def step_id(tenant: str, customer: str, policy_id: str, step: str, currency: str, invoice_ids: Iterable[str]) -> str:
    """Deterministic: the same customer, policy step, currency and invoices always give the same id
    (the notifier's idempotency key)."""
    key = "|".join([tenant, customer, policy_id, step, currency, *sorted(invoice_ids)])
    # str(uuid.uuid5(STEP_NAMESPACE, key)) without the UUID object (the timer computes one per message).
    b = bytearray(hashlib.sha1(_STEP_NS_BYTES + key.encode()).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
