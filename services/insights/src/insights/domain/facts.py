"""How an event, or an item of a service's export, becomes rows of the read model: pure translation, no I/O.

Every row carries its natural key (adapters/orm.py), so the same fact arriving twice (a redelivery, or once from
a backfill and again from the stream) is one row. What a row needs from the model's current state (the balance a
void cancelled, whether a change opened or closed an invoice) is left to the appliers (adapters/apply_*.py),
which work out set-wise what a fact means against the rows already there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from dunning_events.envelope import Envelope
from dunning_events.events import (
    ConsentRevoked,
    CreditNoteApplied,
    CustomerErased,
    CustomerUpserted,
    DisputeOpened,
    DisputeResolved,
    DunningStepCancelled,
    DunningStepDue,
    DunningStepHeld,
    InvoiceSnapshot,
    NotificationOutcome,
    PaymentApplied,
    PaymentReversed,
    PlanCompleted,
    PlanCreated,
    PlanDefaulted,
    PromiseBroken,
    PromiseCancelled,
    PromiseCreated,
    PromiseKept,
)

# notification.<outcome> -> the deliveries column its instant goes into (the first one wins).
DELIVERY_COLUMNS = {
    "notification.sent": "sent_at",
    "notification.delivered": "delivered_at",
    "notification.bounced": "bounced_at",
    "notification.failed": "failed_at",
    "notification.skipped": "skipped_at",
    "notification.held": "held_at",
}
DELIVERY_INSTANTS = tuple(DELIVERY_COLUMNS.values())


def utc_date(at: datetime) -> date:
    """The business date of an instant that has no date of its own."""
    return at.astimezone(UTC).date()


@dataclass(slots=True)
class Facts:
    """The rows a batch of events (or an export page) brings, per table, in arrival order.

    Ledger facts are split by what the appliers must do with them: `invoices` are snapshots (applied when newer
    than the row, `supersedes`), `balances` are the balances after an allocation (the same guard), `changes` are
    invoice_changes rows with their natural key, `closes` are voids and write-offs whose amount (the balance
    they cancelled) comes from the model unless the export said it."""

    invoices: list[dict[str, Any]] = field(default_factory=list)
    balances: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    closes: list[dict[str, Any]] = field(default_factory=list)
    disputed: list[dict[str, Any]] = field(default_factory=list)  # invoices.disputed at a version
    disputes_opened: list[dict[str, Any]] = field(default_factory=list)
    disputes_resolved: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    erasures: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    step_invoices: list[dict[str, Any]] = field(default_factory=list)
    step_cancellations: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    consent_revocations: list[dict[str, Any]] = field(default_factory=list)
    contact_holds: list[dict[str, Any]] = field(default_factory=list)
    promises: list[dict[str, Any]] = field(default_factory=list)
    promise_outcomes: list[dict[str, Any]] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)
    plan_outcomes: list[dict[str, Any]] = field(default_factory=list)

    def touched_invoices(self) -> set[tuple[str, str]]:
        """(tenant, invoice) of every invoice whose balance history this batch may change."""
        out = {(r["tenant_id"], r["invoice_id"]) for r in self.invoices}
        out.update((r["tenant_id"], r["invoice_id"]) for r in self.changes)
        out.update((r["tenant_id"], r["invoice_id"]) for r in self.closes)
        out.update((r["tenant_id"], r["invoice_id"]) for r in self.balances)
        return out


# ---------------------------------------------------------------- the ledger (ledger-sync's events)


def invoice_row(tenant_id: str, d: InvoiceSnapshot) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "invoice_id": d.invoice_id,
        "customer_id": d.customer_id,
        "number": d.number,
        "currency": d.currency,
        "total": d.total,
        "balance": d.balance,
        "issue_date": d.issue_date,
        "due_date": d.due_date or d.issue_date,  # aging counts from the issue date of an invoice without one
        "terms": d.terms,
        "status": d.status,
        "disputed": d.disputed,
        "ledger_version": d.version,
    }


def add_invoice_snapshot(facts: Facts, env: Envelope[Any]) -> None:
    """invoice.created / invoice.updated / invoice.voided: the invoice as it is now. Its `issue` and `prior`
    changes are restated from the row by the applier (an amended total counts from the issue date)."""
    d: InvoiceSnapshot = env.data
    facts.invoices.append(invoice_row(env.tenant_id, d))
    if env.type == "invoice.voided" and d.status in ("void", "written_off"):
        kind = "void" if d.status == "void" else "write_off"
        facts.closes.append(
            {
                "tenant_id": env.tenant_id,
                "invoice_id": d.invoice_id,
                "kind": kind,
                "on_date": utc_date(env.occurred_at),
                "amount": None,  # the balance just before: the model knows it
                "version": d.version,
            }
        )


def _allocations(
    facts: Facts, tenant_id: str, kind: str, source_id: str, on: date, sign: int, allocations: Iterable[Any]
) -> None:
    for a in allocations:
        facts.changes.append(
            {
                "tenant_id": tenant_id,
                "invoice_id": a.invoice_id,
                "change_key": f"{kind}:{source_id}",
                "kind": kind,
                "on_date": on,
                "amount": sign * a.amount,
            }
        )
        facts.balances.append(
            {
                "tenant_id": tenant_id,
                "invoice_id": a.invoice_id,
                "balance": a.invoice_balance_after,
                "status": a.invoice_status_after,
                "ledger_version": a.invoice_version_after,
            }
        )


def add_payment(facts: Facts, env: Envelope[PaymentApplied]) -> None:
    d = env.data
    _allocations(facts, env.tenant_id, "payment", d.payment_id, d.received_on, -1, d.allocations)


def add_reversal(facts: Facts, env: Envelope[PaymentReversed]) -> None:
    d = env.data
    _allocations(facts, env.tenant_id, "reversal", d.payment_id, utc_date(env.occurred_at), 1, d.allocations)


def add_credit(facts: Facts, env: Envelope[CreditNoteApplied]) -> None:
    d = env.data
    _allocations(facts, env.tenant_id, "credit", d.credit_note_id, d.issued_on, -1, d.allocations)


def add_dispute_opened(facts: Facts, env: Envelope[DisputeOpened]) -> None:
    d = env.data
    key = {"tenant_id": env.tenant_id, "invoice_id": d.invoice_id}
    facts.disputes_opened.append({**key, "opened_at": env.occurred_at})
    facts.disputed.append({**key, "disputed": True, "ledger_version": d.invoice_version})


def add_dispute_resolved(facts: Facts, env: Envelope[DisputeResolved]) -> None:
    d = env.data
    key = {"tenant_id": env.tenant_id, "invoice_id": d.invoice_id}
    facts.disputes_resolved.append({**key, "resolved_at": env.occurred_at})
    facts.disputed.append({**key, "disputed": False, "ledger_version": d.invoice_version})


def add_customer(facts: Facts, env: Envelope[CustomerUpserted]) -> None:
    d = env.data
    facts.customers.append(
        {"tenant_id": env.tenant_id, "customer_id": d.customer_id, "name": d.name, "segment": d.segment}
    )


def add_erasure(facts: Facts, env: Envelope[CustomerErased]) -> None:
    d = env.data
    facts.erasures.append({"tenant_id": env.tenant_id, "customer_id": d.customer_id, "name": d.pseudonym})


# ---------------------------------------------------------------- the ledger's export (ledger-sync)


def _day(value: Any) -> date:
    return value if isinstance(value, date) and not isinstance(value, datetime) else date.fromisoformat(str(value))


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def add_export_customer(facts: Facts, tenant_id: str, item: Mapping[str, Any]) -> None:
    """An item of ledger-sync's `GET /v1/exports/customers` (an erased one carries its pseudonym as its name)."""
    row = {"tenant_id": tenant_id, "customer_id": item["customer_id"], "name": item.get("name")}
    if item.get("erased"):
        facts.erasures.append(row)
    else:
        facts.customers.append({**row, "segment": item.get("segment")})


def add_export_invoice(facts: Facts, tenant_id: str, item: Mapping[str, Any]) -> None:
    """An item of ledger-sync's `GET /v1/exports/invoices`: the invoice now, with every payment, credit, close
    and dispute period it had. The same rows its events give, keyed the same way."""
    invoice_id = item["invoice_id"]
    issue = _day(item["issue_date"])
    due = item.get("due_date")
    facts.invoices.append(
        {
            "tenant_id": tenant_id,
            "invoice_id": invoice_id,
            "customer_id": item["customer_id"],
            "number": item["number"],
            "currency": item["currency"],
            "total": Decimal(str(item["total"])),
            "balance": Decimal(str(item["balance"])),
            "issue_date": issue,
            "due_date": _day(due) if due else issue,
            "terms": item.get("terms"),
            "status": item["status"],
            "disputed": bool(item.get("disputed")),
            "ledger_version": int(item.get("version") or 0),
        }
    )
    key = {"tenant_id": tenant_id, "invoice_id": invoice_id}
    for p in item.get("payments") or ():
        amount = Decimal(str(p["amount"]))
        facts.changes.append(
            {**key, "change_key": f"payment:{p['payment_id']}", "kind": "payment",
             "on_date": _day(p["received_on"]), "amount": -amount}
        )  # fmt: skip
        if p.get("reversed_at"):
            facts.changes.append(
                {**key, "change_key": f"reversal:{p['payment_id']}", "kind": "reversal",
                 "on_date": utc_date(_instant(p["reversed_at"])), "amount": amount}
            )  # fmt: skip
    for c in item.get("credits") or ():
        facts.changes.append(
            {**key, "change_key": f"credit:{c['credit_note_id']}", "kind": "credit",
             "on_date": _day(c["issued_on"]), "amount": -Decimal(str(c["amount"]))}
        )  # fmt: skip
    closed = item.get("closed")
    if closed:
        kind = "void" if closed["status"] == "void" else "write_off"
        facts.closes.append(
            {**key, "kind": kind, "on_date": utc_date(_instant(closed["closed_at"])),
             "amount": Decimal(str(closed["amount"])), "version": int(item.get("version") or 0)}
        )  # fmt: skip
    for period in item.get("disputes") or ():
        facts.disputes_opened.append({**key, "opened_at": _instant(period["opened_at"])})
        if period.get("resolved_at"):
            facts.disputes_resolved.append(
                {**key, "opened_at": _instant(period["opened_at"]), "resolved_at": _instant(period["resolved_at"])}
            )


# ---------------------------------------------------------------- steps (policy-engine)


def add_step_due(facts: Facts, env: Envelope[DunningStepDue]) -> None:
    d = env.data
    next_name, next_at = (d.next_step.step_name, d.next_step.at) if d.next_step is not None else (None, None)
    facts.steps.append(
        {
            "tenant_id": env.tenant_id,
            "step_id": d.step_id,
            "customer_id": d.customer_id,
            "policy_id": d.policy_id,
            "policy_version": d.policy_version,
            "step_index": d.step_index,
            "step_name": d.step_name,
            "tone": d.tone,
            "currency": d.currency,
            "amount_due": d.amount_due,
            "channels": list(d.channels),
            "due_at": env.occurred_at,
            "sent_on": utc_date(env.occurred_at),
            "next_step_name": next_name,
            "next_step_at": next_at,
        }
    )
    for inv in d.invoices:
        facts.step_invoices.append(
            {"tenant_id": env.tenant_id, "step_id": d.step_id, "invoice_id": inv.invoice_id, "balance": inv.balance}
        )


def add_step_cancelled(facts: Facts, env: Envelope[DunningStepCancelled]) -> None:
    facts.step_cancellations.append(
        {"tenant_id": env.tenant_id, "step_id": env.data.step_id, "cancelled_at": env.occurred_at}
    )


def add_step_held(facts: Facts, env: Envelope[DunningStepHeld]) -> None:
    """dunning.step.held: one contact_holds row per channel a rule held back, keyed by the event."""
    for held in env.data.held:
        facts.contact_holds.append(
            {
                "tenant_id": env.tenant_id,
                "hold_key": str(env.id),
                "channel": held.channel,
                "customer_id": env.data.customer_id,
                "held_on": utc_date(env.occurred_at),
                "rule": held.rule,
                "reason": held.reason,
            }
        )


# ---------------------------------------------------------------- deliveries (notifier)


def add_delivery(facts: Facts, env: Envelope[NotificationOutcome]) -> None:
    d = env.data
    facts.deliveries.append(
        {
            "tenant_id": env.tenant_id,
            "delivery_id": d.delivery_id,
            "step_id": d.step_id,
            "customer_id": d.customer_id,
            "channel": d.channel,
            DELIVERY_COLUMNS[env.type]: env.occurred_at,
        }
    )
    if env.type == "notification.held":
        facts.contact_holds.append(
            {
                "tenant_id": env.tenant_id,
                "hold_key": d.delivery_id,
                "channel": d.channel,
                "customer_id": d.customer_id,
                "held_on": utc_date(env.occurred_at),
                "rule": "quiet_hours",
                "reason": d.reason,
            }
        )


def add_consent_revoked(facts: Facts, env: Envelope[ConsentRevoked]) -> None:
    d = env.data
    facts.consent_revocations.append(
        {
            "tenant_id": env.tenant_id,
            "customer_id": d.customer_id,
            "channel": d.channel,
            "revoked_at": env.occurred_at,
            "reason": d.reason,
        }
    )


# ---------------------------------------------------------------- promises and plans (promise-tracker)


def add_promise_created(facts: Facts, env: Envelope[PromiseCreated]) -> None:
    d = env.data
    facts.promises.append(
        {
            "tenant_id": env.tenant_id,
            "promise_id": d.promise_id,
            "customer_id": d.customer_id,
            "plan_id": d.plan_id,
            "invoice_ids": list(d.invoice_ids),
            "currency": d.currency,
            "amount": d.amount,
            "promised_date": d.promised_date,
            "recorded_by": d.recorded_by,
            "created_at": env.occurred_at,
            "status": "open",
        }
    )


def add_promise_outcome(
    facts: Facts, env: Envelope[PromiseKept] | Envelope[PromiseBroken] | Envelope[PromiseCancelled]
) -> None:
    d = env.data
    status = env.type.removeprefix("promise.")
    facts.promise_outcomes.append(
        {
            "tenant_id": env.tenant_id,
            "promise_id": d.promise_id,
            "status": status,
            "received": getattr(d, "received", None),
            "partially_kept": bool(getattr(d, "partially_kept", False)),
            "ended_at": env.occurred_at,
        }
    )


def add_plan_created(facts: Facts, env: Envelope[PlanCreated]) -> None:
    d = env.data
    facts.plans.append(
        {
            "tenant_id": env.tenant_id,
            "plan_id": d.plan_id,
            "customer_id": d.customer_id,
            "invoice_ids": list(d.invoice_ids),
            "currency": d.currency,
            "total": d.total,
            "instalments": len(d.instalments),
            "created_at": env.occurred_at,
            "status": "active",
        }
    )


def add_plan_outcome(facts: Facts, env: Envelope[PlanCompleted] | Envelope[PlanDefaulted]) -> None:
    facts.plan_outcomes.append(
        {
            "tenant_id": env.tenant_id,
            "plan_id": env.data.plan_id,
            "status": "completed" if env.type == "plan.completed" else "defaulted",
            "ended_at": env.occurred_at,
        }
    )


# ---------------------------------------------------------------- an invoice's balance over time

# Same-day changes in a stable order (issued before paid, paid before reversed); adapters/apply_ledger.py's
# CHANGE_ORDER is this in SQL, and a test pins the two together.
CHANGE_RANK = {"issue": 0, "prior": 1, "payment": 2, "credit": 3, "reversal": 4, "void": 5, "write_off": 5}


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    kind: str
    on_date: date
    amount: Decimal


def in_business_order(changes: Iterable[Change]) -> list[Change]:
    return sorted(changes, key=lambda c: (c.on_date, CHANGE_RANK[c.kind], c.key))


def open_deltas(changes: Iterable[Change]) -> dict[str, int]:
    """Per change, +1 when it takes the invoice's running balance (in business-date order) from zero to non-zero,
    -1 back to zero, else 0: their sum up to a day is whether the invoice was open at its end, whatever order the
    facts arrived in."""
    out: dict[str, int] = {}
    balance = Decimal(0)
    for change in in_business_order(changes):
        after = balance + change.amount
        out[change.key] = int(after != 0) - int(balance != 0)
        balance = after
    return out


def settled_on(changes: Iterable[Change], balance: Decimal) -> date | None:
    """The day a payment or credit brought the balance to zero; None while it is owed (a reversal reopened it) or
    when something else closed it (a void, a write-off, a settlement before the platform)."""
    if balance != 0:
        return None
    ordered = in_business_order(changes)
    deltas = open_deltas(ordered)
    closing = [c for c in ordered if deltas[c.key] == -1]
    if closing and closing[-1].kind in ("payment", "credit"):
        return closing[-1].on_date
    return None
