"""A note on a case: free text a person writes on the customer's timeline (or on the timelines of some of its
invoices), with their name. A note decides nothing: it is there so the next person reads what the last one knew.

The text is personal free text: it is kept in the entry's `detail.note`, never in its `reason`, so the erasure of
the customer (customer.erased: repository.redact_timeline) cuts it whole, as it cuts a logged call's note.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policy_engine.service_layer.handlers import Engine

NOTE_KIND = "note"
NOTE_MAX = 2000


class NoteRefused(ValueError):
    """The note cannot be written as asked: (field, reason) pairs; nothing was written."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in errors))
        self.errors = errors


@dataclass(frozen=True)
class Note:
    note_id: str
    customer_id: str
    invoice_ids: list[str]
    text: str
    at: datetime
    by: dict[str, str] | None

    def to_json(self) -> dict[str, Any]:
        return {"note_id": self.note_id, "customer_id": self.customer_id, "invoice_ids": self.invoice_ids,
                "text": self.text, "at": self.at.isoformat(), "by": self.by}  # fmt: skip


async def add_note(engine: Engine, tenant: str, customer: str, text: str, invoice_ids: Sequence[str] | None) -> Note:
    """Write the note (one entry on the customer's timeline, or one per invoice named) in the engine's transaction;
    raises NoteRefused before writing anything."""
    errors: list[tuple[str, str]] = []
    text = text.strip()
    if not text:
        errors.append(("text", "must not be empty"))
    elif len(text) > NOTE_MAX:
        errors.append(("text", f"at most {NOTE_MAX} characters"))
    chosen = list(dict.fromkeys(invoice_ids or ()))
    if chosen:
        cases = await engine.load(tenant, chosen)
        wrong = [i for i in chosen if i not in cases or cases[i].customer_id != customer]
        if wrong:
            errors.append(("invoice_ids", f"not invoices of customer {customer}: {', '.join(wrong)}"))
    elif invoice_ids is not None:
        errors.append(("invoice_ids", "must name at least one invoice (leave it out for the customer)"))
    if errors:
        raise NoteRefused(errors)
    # The person, as every entry a person's action writes names them (Engine._by: detail.actor = {sub, name}).
    by = engine.actor.as_detail() if engine.actor is not None else None
    reason = f"note by {by['name']}" if by else "note"
    note = Note(str(uuid.uuid4()), customer, chosen, text, engine.now, by)
    detail: dict[str, Any] = {"note_id": note.note_id, "note": text, **({"actor": by} if by else {})}
    for invoice_id in chosen:
        await engine.repo.write_invoice_note(tenant, customer, invoice_id, engine.now, NOTE_KIND, reason, **detail)
    if not chosen:
        await engine.repo.write_customer_note(tenant, customer, engine.now, NOTE_KIND, reason, **detail)
    return note
