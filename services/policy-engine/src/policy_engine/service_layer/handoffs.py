"""Hand-offs to collections: the cases a step closed `handed_off`, waiting for a person to send the file to the
agency (or to decide otherwise), and that person's acknowledgement (event `dunning.hand_off.completed`).

A case handed off is closed by the timer (domain.cases.mark_sent): nothing more is sent, but the file still has to
reach someone. The list reads the closed cases themselves (partial index ix_cases_handed_off: only handed-off cases)
and their acknowledgement, if any; acknowledging stores one row per case (a second is a conflict) and a timeline
entry naming the person. The note a person adds is free text: on the timeline (`detail.note`) only, cut on erasure.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from dunning_events.events import HandOffOutcome
from dunning_events.money import minor_units
from dunning_kit.actor import Actor
from dunning_kit.pages import CursorCodec, Page
from policy_engine.adapters import repository as repo
from policy_engine.domain.closure import ClosureReason

NOTE_KIND = "hand_off"
HAND_OFFS = CursorCodec("policy.hand_offs")
_OUTCOME_TEXT = {
    "sent_to_agency": "sent to the collection agency",
    "kept_in_house": "kept in house",
    "written_off_recommended": "write-off recommended",
}


class NotHandedOff(LookupError):
    pass


class AlreadyAcknowledged(Exception):
    pass


_SELECT = (
    "SELECT c.invoice_id, c.customer_id, c.balance_minor, c.currency, c.last_sent_at, c.policy_id, c.done_steps, "
    "a.acknowledged_at, a.acknowledged_by_sub, a.acknowledged_by_name, a.outcome "
    "FROM cases c LEFT JOIN hand_off_acknowledgements a ON a.tenant_id = c.tenant_id AND a.invoice_id = c.invoice_id "
    f"WHERE c.tenant_id = $1 AND c.closure = '{ClosureReason.HANDED_OFF.value}'"
)


def _item(r: Any) -> dict[str, Any]:
    by = {"sub": r["acknowledged_by_sub"], "name": r["acknowledged_by_name"]} if r["acknowledged_by_sub"] else None
    return {
        "invoice_id": r["invoice_id"], "customer_id": r["customer_id"],
        "balance": str(Decimal(r["balance_minor"]).scaleb(-minor_units(r["currency"]))), "currency": r["currency"],
        "handed_off_at": r["last_sent_at"].isoformat() if r["last_sent_at"] else None, "policy_id": r["policy_id"],
        "step": r["done_steps"][-1] if r["done_steps"] else None,
        "acknowledged_at": r["acknowledged_at"].isoformat() if r["acknowledged_at"] else None,
        "acknowledged_by": by, "outcome": r["outcome"],
    }  # fmt: skip


async def hand_offs_page(
    apg: asyncpg.Connection, tenant: str, *, acknowledged: bool, limit: int, cursor: str | None
) -> Page[dict[str, Any]]:
    """Handed-off cases, oldest hand-off first; acknowledged ones or the ones still waiting for a person."""
    after = HAND_OFFS.decode(cursor, 2)
    rows = await apg.fetch(
        _SELECT + f" AND a.invoice_id IS {'NOT ' if acknowledged else ''}NULL "
        "AND ($2::timestamptz IS NULL OR (c.last_sent_at, c.invoice_id) > ($2, $3)) "
        "ORDER BY c.last_sent_at, c.invoice_id LIMIT $4",
        tenant, after[0] if after else None, after[1] if after else None, limit + 1,
    )  # fmt: skip
    return HAND_OFFS.page(rows, limit, lambda r: (r["last_sent_at"], r["invoice_id"]), _item)


async def acknowledge(
    apg: asyncpg.Connection, tenant: str, invoice_id: str, outcome: HandOffOutcome, note: str | None,
    actor: Actor | None, now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """Record what a person did with a handed-off file; NotHandedOff, AlreadyAcknowledged before writing."""
    case = await apg.fetchrow(
        "SELECT customer_id FROM cases WHERE tenant_id = $1 AND invoice_id = $2 AND closure = $3 FOR UPDATE",
        tenant, invoice_id, ClosureReason.HANDED_OFF.value,
    )  # fmt: skip
    if case is None:
        raise NotHandedOff(invoice_id)
    by = actor.as_detail() if actor is not None else None
    stored = await apg.fetchval(
        "INSERT INTO hand_off_acknowledgements (tenant_id, invoice_id, outcome, acknowledged_at, acknowledged_by_sub, "
        "acknowledged_by_name) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1",
        tenant, invoice_id, outcome, now, by["sub"] if by else None, by["name"] if by else None,
    )  # fmt: skip
    if stored is None:
        raise AlreadyAcknowledged(invoice_id)
    reason = f"hand-off completed: {_OUTCOME_TEXT[outcome]}" + (f" by {by['name']}" if by else "")
    detail: dict[str, Any] = {"outcome": outcome, **({"note": note} if note else {}), **({"actor": by} if by else {})}
    await repo.write_invoice_note(apg, tenant, case["customer_id"], invoice_id, now, NOTE_KIND, reason, **detail)
    row = await apg.fetchrow(_SELECT + " AND c.invoice_id = $2", tenant, invoice_id)
    return _item(row)
