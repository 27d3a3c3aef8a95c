"""Envelopes of every fact-carrying event type, built as their publishers build them (for insights' tests)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    Allocation,
    CreditNoteApplied,
    CustomerUpserted,
    DisputeOpened,
    DisputeResolved,
    DunningStepDue,
    InvoiceCreated,
    InvoiceUpdated,
    InvoiceVoided,
    NotificationDelivered,
    NotificationSent,
    PaymentApplied,
    PaymentReversed,
    PromiseCreated,
    PromiseKept,
    StepInvoice,
)

TENANT = "acme"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def ev(data: EventData, when: datetime, tenant: str = TENANT) -> Envelope[Any]:
    return new_event(data, tenant_id=tenant, source="test", occurred_at=when)


def customer(cid: str = "C1", segment: str | None = "smb", when: datetime = T0) -> Envelope[Any]:
    return ev(CustomerUpserted(customer_id=cid, name=f"Customer {cid}", segment=segment), when)


def invoice(
    iid: str,
    *,
    total: str = "100.00",
    balance: str | None = None,
    version: int = 1,
    issue: date = date(2026, 3, 2),
    due: date | None = date(2026, 4, 1),
    status: str = "open",
    cls: type[Any] = InvoiceCreated,
    cid: str = "C1",
    when: datetime = T0,
    currency: str = "EUR",
) -> Envelope[Any]:
    data = cls(
        customer_id=cid, invoice_id=iid, number=f"N-{iid}", currency=currency, total=Decimal(total),
        balance=Decimal(balance if balance is not None else total), issue_date=issue, due_date=due, status=status,
        version=version, terms="net30",
    )  # fmt: skip
    return ev(data, when)


def updated(iid: str, **kw: Any) -> Envelope[Any]:
    return invoice(iid, cls=InvoiceUpdated, **kw)


def voided(iid: str, *, status: str = "void", **kw: Any) -> Envelope[Any]:
    return invoice(iid, cls=InvoiceVoided, status=status, balance="0", **kw)


def alloc(iid: str, amount: str, after: str, version: int, status: str | None = None) -> Allocation:
    return Allocation(
        invoice_id=iid, amount=Decimal(amount), invoice_balance_after=Decimal(after),
        invoice_status_after=status or ("paid" if Decimal(after) == 0 else "open"), invoice_version_after=version,
    )  # fmt: skip


def payment(pid: str, allocations: list[Allocation], *, received: date, when: datetime, cid: str = "C1") -> Any:
    total = sum((a.amount for a in allocations), Decimal(0))
    return ev(
        PaymentApplied(customer_id=cid, payment_id=pid, currency="EUR", amount=total, received_on=received,
                       allocations=allocations, unapplied=Decimal(0)),
        when,
    )  # fmt: skip


def reversal(pid: str, allocations: list[Allocation], *, when: datetime, cid: str = "C1") -> Any:
    total = sum((a.amount for a in allocations), Decimal(0))
    return ev(
        PaymentReversed(customer_id=cid, payment_id=pid, currency="EUR", amount=total, allocations=allocations),
        when,
    )


def credit(nid: str, allocations: list[Allocation], *, issued: date, when: datetime, cid: str = "C1") -> Any:
    total = sum((a.amount for a in allocations), Decimal(0))
    return ev(
        CreditNoteApplied(customer_id=cid, credit_note_id=nid, currency="EUR", total=total, issued_on=issued,
                          allocations=allocations),
        when,
    )  # fmt: skip


def dispute(iid: str, *, opened: bool, version: int, when: datetime, cid: str = "C1") -> Any:
    if opened:
        return ev(DisputeOpened(customer_id=cid, invoice_id=iid, invoice_version=version), when)
    return ev(DisputeResolved(customer_id=cid, invoice_id=iid, invoice_version=version), when)


def step_due(sid: str, invoices: dict[str, str], *, when: datetime, cid: str = "C1") -> Any:
    return ev(
        DunningStepDue(
            customer_id=cid, step_id=sid, policy_id="p1", policy_version=1, step_index=0, step_name="reminder",
            tone="friendly", template_id="t1", channels=["email"], currency="EUR",
            amount_due=sum((Decimal(b) for b in invoices.values()), Decimal(0)),
            invoices=[StepInvoice(invoice_id=i, number=f"N-{i}", total=Decimal(b), balance=Decimal(b),
                                  due_date=date(2026, 4, 1), days_overdue=0) for i, b in invoices.items()],
            scheduled_for=when,
        ),
        when,
    )  # fmt: skip


def sent(did: str, sid: str, *, when: datetime, delivered: bool = False, cid: str = "C1") -> Any:
    cls = NotificationDelivered if delivered else NotificationSent
    return ev(cls(customer_id=cid, delivery_id=did, step_id=sid, channel="email"), when)


def promise(pid: str, *, when: datetime, kept_at: datetime | None = None, cid: str = "C1") -> list[Any]:
    out = [
        ev(
            PromiseCreated(customer_id=cid, promise_id=pid, invoice_ids=["A"], currency="EUR",
                           amount=Decimal("50"), promised_date=when.date() + timedelta(days=7),
                           deadline=when + timedelta(days=8), recorded_by="collector"),
            when,
        )
    ]  # fmt: skip
    if kept_at is not None:
        out.append(
            ev(
                PromiseKept(customer_id=cid, promise_id=pid, invoice_ids=["A"], currency="EUR",
                            amount=Decimal("50"), received=Decimal("50")),
                kept_at,
            )
        )  # fmt: skip
    return out
