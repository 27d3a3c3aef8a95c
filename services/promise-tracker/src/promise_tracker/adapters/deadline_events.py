"""promise.kept / promise.broken of stand-alone promises judged by the deadline timer, as outbox records.

The rows are built by the events library's fast encoder (dunning_events.fast_encoder: the models' field order,
byte for byte what the codec writes for `new_event(PromiseKept/PromiseBroken(...))`): the timer judges thousands
of promises per batch, and validating data this service just read from its own rows cost more than the rest of a
check. tests/test_deadline_events.py holds the two together for these rows (every field, its order and its bytes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from dunning_events.codec import time_text
from dunning_events.events import PromiseBroken, PromiseKept
from dunning_events.fast_encoder import OUTBOX_COLUMNS, FastEncoder
from dunning_events.topics import partition_key

__all__ = ["JUDGED_COLUMNS", "OUTBOX_COLUMNS", "amount", "outbox_records", "uuid4_strings"]

SOURCE = "promise-tracker"
# The rows' deadlines come from PostgreSQL, always in UTC: the encoder writes them as pydantic does (Z).
_KEPT, _BROKEN = FastEncoder(PromiseKept, SOURCE), FastEncoder(PromiseBroken, SOURCE)


def amount(minor: int, units: int) -> str:
    """Minor units as DecimalStr writes them: exactly the currency's decimals ('500.00', '120000', '1.250')."""
    if units == 0:
        return str(minor)
    digits = str(-minor if minor < 0 else minor).rjust(units + 1, "0")
    return f"{'-' if minor < 0 else ''}{digits[:-units]}.{digits[-units:]}"


_V4_VERSION = bytes((b & 0x0F) | 0x40 for b in range(256))  # byte 6: version 4 in the high nibble
_V4_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))  # byte 8: the RFC 4122 variant


def uuid4_strings(count: int) -> Iterator[str]:
    """`count` random version-4 UUIDs as str(uuid.uuid4()) writes them, from one os.urandom call
    (uuid.uuid4 reads the random source once per UUID, which cost as much as building the event)."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = raw[6::16].translate(_V4_VERSION)
    raw[8::16] = raw[8::16].translate(_V4_VARIANT)
    h = raw.hex()
    for i in range(0, 32 * count, 32):
        yield f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"


# What the deadline statement returns per judged promise, in this order, followed by the batch's count of
# claimed timers: the records are built from its asyncpg records unpacked by position (attribute access
# on SQLAlchemy result rows cost as much as building the events).
JUDGED_COLUMNS = (
    "tenant_id", "promise_id", "customer_id", "invoice_ids", "currency", "amount_minor", "received_minor",
    "deadline", "status", "broken_count", "units", "plan_id", "instalment_index",
)  # fmt: skip


def outbox_records(rows: Sequence[Any], occurred_at: datetime, headers: str) -> list[tuple[Any, ...]]:
    """One outbox record (OUTBOX_COLUMNS) per judged stand-alone promise (JUDGED_COLUMNS + the claimed
    count), in the rows' order. `broken_count` is the customer's running count of broken promises (set for every
    verdict but kept); `units` the currency's decimals."""
    at = time_text(occurred_at)  # once per batch, exactly as the envelope writes it
    ids = uuid4_strings(2 * len(rows))  # two per event: its id and a new correlation id
    records: list[tuple[Any, ...]] = []
    append = records.append
    for (
        tenant_id, promise_id, customer_id, invoice_ids, currency, amount_minor, received_minor,
        deadline, status, broken_count, units, _plan_id, _instalment_index, _claimed,
    ) in rows:  # fmt: skip
        event_id, correlation_id = next(ids), next(ids)
        data = {
            "customer_id": customer_id,
            "promise_id": promise_id,
            "invoice_ids": invoice_ids,
            "currency": currency,
            "amount": amount(amount_minor, units),
            "received": amount(received_minor, units),
        }
        if status == "kept":
            encoder = _KEPT
        else:  # PromiseBroken's own fields follow the shared ones, before plan_id (the model's order: the encoder
            # writes a dict already in it as it is, and reorders any other)
            encoder = _BROKEN
            data["shortfall"] = amount(amount_minor - (received_minor if received_minor > 0 else 0), units)
            data["partially_kept"] = status == "partially_kept"
            data["deadline"] = deadline
            data["broken_promise_count"] = broken_count
        data["plan_id"] = None
        append(
            encoder.row(
                event_id=event_id,
                key=partition_key(tenant_id, customer_id),
                data=data,
                headers=headers,
                occurred_at=at,
                subject=promise_id,
                tenant_id=tenant_id,
                correlation_id=correlation_id,
            )
        )
    return records
