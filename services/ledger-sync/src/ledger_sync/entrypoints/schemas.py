"""Request and response bodies of the ledger-sync API v1 (requests are the canonical ledger records)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledger_sync.domain.records import (
    AllocationRecord as AllocationIn,
)
from ledger_sync.domain.records import (
    CreditNoteRecord as CreditNoteIn,
)
from ledger_sync.domain.records import (
    CustomerRecord as CustomerIn,
)
from ledger_sync.domain.records import (
    InvoiceRecord as InvoiceIn,
)
from ledger_sync.domain.records import (
    PaymentRecord as PaymentIn,
)

__all__ = [
    "AllocationIn",
    "CreditNoteIn",
    "CustomerIn",
    "InvoiceIn",
    "PaymentIn",
]


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000)


class ResolutionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: str | None = Field(None, max_length=2000)


class WriteResult(BaseModel):
    id: str
    created: bool
    changed: bool = Field(description="False when the request changed nothing (no events emitted)")
    events: list[str] = Field(description="Types of the events this write emitted")


class MoneyLine(BaseModel):
    model_config = ConfigDict(extra="allow")
    amount: str


class CustomerOut(BaseModel):
    id: str
    name: str
    contacts: list[dict[str, Any]]
    time_zone: str
    locale: str
    country: str | None
    tags: list[str]
    segment: str | None
    consent: dict[str, bool]
    credit_hold: bool
    source: str
    updated_at: str


class InvoiceOut(BaseModel):
    id: str
    customer_id: str
    number: str
    currency: str
    total: str
    balance: str
    cancelled: str = Field(description="Taken off the books by a void or write-off")
    issue_date: str
    due_date: str | None
    terms: str | None
    status: str
    disputed: bool
    dispute_reason: str | None
    days_overdue: int
    source: str
    updated_at: str
    payments: list[MoneyLine] | None = None
    credits: list[MoneyLine] | None = None


class PaymentOut(BaseModel):
    id: str
    customer_id: str
    currency: str
    amount: str
    unapplied: str = Field(description="Over-payment kept as unapplied credit")
    received_on: str
    reference: str | None
    status: str
    reversal_reason: str | None
    source: str
    allocations: list[MoneyLine] | None = None


class CreditNoteOut(BaseModel):
    id: str
    customer_id: str
    number: str | None
    currency: str
    total: str
    remaining: str
    issued_on: str
    status: str
    source: str
    allocations: list[MoneyLine] | None = None


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None


class InvoicePage(BaseModel):
    items: list[InvoiceOut]
    next_cursor: str | None


class PaymentPage(BaseModel):
    items: list[PaymentOut]
    next_cursor: str | None


class CreditNotePage(BaseModel):
    items: list[CreditNoteOut]
    next_cursor: str | None
