"""Log a telephone call with the debtor (a collector's call, from the workspace or any client of the API).

One transaction: the call, its contact attempts (the caps count it as a call about each debt), one timeline entry
per debt (or one for the customer when none is open) and `dunning.call.logged` (outbox) - or nothing, when the
input is refused. A conversation holds every call about those debts for 7 days: the timer reads the conversations
when it decides a voice step (service_layer.firing.cap_check, domain.conversations) and holds it as it holds a capped
one (`dunning.step.held`, rule `conversation`). The customer's claim lock is taken first, so a timer batch deciding
this customer's steps at this moment finishes before the call is stored and the next one sees it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import new_event
from dunning_events.events import DunningCallLogged
from dunning_events.outbox import OutboxWriter
from policy_engine.adapters import call_log
from policy_engine.adapters import repository as repo
from policy_engine.domain.conversations import REGULATION, CallOutcome, no_call_until
from policy_engine.service_layer.handlers import SOURCE
from policy_engine.service_layer.queries import customer_known

NOTE_KIND = "call"


class UnknownCustomer(LookupError):
    pass


class CallRefused(ValueError):
    """The call cannot be logged as asked: (field, reason) pairs, nothing was written."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in errors))
        self.errors = errors


@dataclass(frozen=True)
class LoggedCall:
    call_id: str
    customer_id: str
    outcome: str
    at: datetime
    invoice_ids: list[str]
    note: str | None
    no_call_until: datetime | None
    logged_by: str | None
    logged_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id, "customer_id": self.customer_id, "outcome": self.outcome,
            "at": self.at.isoformat(), "invoice_ids": self.invoice_ids, "note": self.note,
            "no_call_until": self.no_call_until.isoformat() if self.no_call_until else None,
            "logged_by": self.logged_by, "logged_at": self.logged_at.isoformat(),
        }  # fmt: skip


async def _debts(
    apg: asyncpg.Connection, tenant: str, customer: str, asked: Sequence[str] | None
) -> tuple[list[str], list[tuple[str, str]]]:
    """The invoices the call was about (asked, or the customer's open ones) and what is wrong with the ones asked."""
    if asked is None:
        rows = await apg.fetch(
            "SELECT invoice_id FROM cases WHERE tenant_id = $1 AND customer_id = $2 AND status <> 'closed' "
            "ORDER BY invoice_id",
            tenant, customer,
        )  # fmt: skip
        return [r["invoice_id"] for r in rows], []
    if not asked:
        return [], [("invoice_ids", "must name at least one invoice (leave it out for all the open ones)")]
    rows = await apg.fetch(
        "SELECT invoice_id, customer_id FROM cases WHERE tenant_id = $1 AND invoice_id = ANY($2::text[])",
        tenant, list(asked),
    )  # fmt: skip
    owner = {r["invoice_id"]: r["customer_id"] for r in rows}
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, invoice_id in enumerate(asked):
        if invoice_id in seen:
            errors.append((f"invoice_ids[{i}]", f"invoice {invoice_id} is listed twice"))
        elif invoice_id not in owner:
            errors.append((f"invoice_ids[{i}]", f"unknown invoice {invoice_id}"))
        elif owner[invoice_id] != customer:
            errors.append((f"invoice_ids[{i}]", f"invoice {invoice_id} is not the customer's ({customer})"))
        seen.add(invoice_id)
    return list(dict.fromkeys(asked)), errors


def _reason(outcome: str, at: datetime, by: str | None, until: datetime | None) -> str:
    text = f"call logged ({outcome.replace('_', ' ')}) at {at.isoformat()}"
    if by:
        text += f" by {by}"
    if until is not None:
        return f"{text}: no call about this debt until {until.isoformat()} ({REGULATION})"
    return f"{text}: counts as a call attempt"


async def log_call(
    session: AsyncSession, outbox: OutboxWriter, tenant: str, customer: str, *, outcome: CallOutcome,
    invoice_ids: Sequence[str] | None, at: datetime | None, note: str | None, now: datetime,
    actor_name: str | None = None,
) -> LoggedCall:  # fmt: skip
    """Store the call and everything it implies in the caller's transaction; raises UnknownCustomer or CallRefused
    (before writing anything)."""
    apg = await repo.driver(session)
    if not await customer_known(apg, tenant, customer):
        raise UnknownCustomer(customer)
    at = now if at is None else at
    errors: list[tuple[str, str]] = []
    if at > now:
        errors.append(("at", f"must not be in the future (now is {now.isoformat()})"))
    debts, wrong = await _debts(apg, tenant, customer, invoice_ids)
    errors += wrong
    if errors:
        raise CallRefused(errors)

    await repo.hold_customer(apg, tenant, customer)
    call = LoggedCall(
        call_id=str(uuid.uuid4()), customer_id=customer, outcome=outcome, at=at, invoice_ids=debts, note=note,
        no_call_until=no_call_until(outcome, at), logged_by=actor_name, logged_at=now,
    )  # fmt: skip
    await call_log.insert_call(apg, tenant, customer, call.call_id, outcome, at, debts, note, actor_name, now)
    reason = _reason(outcome, at, actor_name, call.no_call_until)
    detail: dict[str, Any] = {
        "call_id": call.call_id, "outcome": outcome, "call_at": at.isoformat(), "note": note,
        "logged_by": actor_name,
        "no_call_until": call.no_call_until.isoformat() if call.no_call_until else None,
    }  # fmt: skip
    for invoice_id in debts:
        await repo.write_invoice_note(apg, tenant, customer, invoice_id, now, NOTE_KIND, reason, **detail)
    if not debts:
        await repo.write_customer_note(apg, tenant, customer, now, NOTE_KIND, reason, **detail)
    data = DunningCallLogged(
        customer_id=customer, call_id=call.call_id, outcome=outcome, invoice_ids=debts,
        no_call_until=call.no_call_until, logged_by=actor_name,
    )  # fmt: skip
    await outbox.add(session, [new_event(data, tenant_id=tenant, source=SOURCE, occurred_at=at)])
    return call
