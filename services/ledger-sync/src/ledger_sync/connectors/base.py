"""The one interface every connector implements, and the canonical changes they produce.

A connector only talks to its ERP and translates: `pages(cursor)` pulls changed objects page by page
(each page carries the cursor to persist once it is applied), `fetch` reads one object (webhooks,
missing references, reconciliation), `map` turns an ERP object into ledger changes (pure; raises
MappingError for garbage), and the webhook trio verifies and parses notifications. Everything else —
applying, cursors, quarantine, freshness, retries of notices — is shared (service_layer/sync.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from ledger_sync.domain.records import CreditNoteRecord, CustomerRecord, InvoiceRecord, PaymentRecord

# Canonical entity kinds, whatever the ERP calls them.
CUSTOMER, INVOICE, PAYMENT, CREDIT_NOTE = "customer", "invoice", "payment", "credit_note"
APPLY_ORDER = {CUSTOMER: 0, INVOICE: 1, CREDIT_NOTE: 2, PAYMENT: 3}


class MappingError(ValueError):
    """An ERP object we cannot turn into ledger facts; it is quarantined with this message."""


class SignatureError(Exception):
    """A webhook whose signature does not verify: answered 401, nothing written."""


@dataclass(frozen=True)
class ErpObject:
    kind: str  # one of CUSTOMER, INVOICE, PAYMENT, CREDIT_NOTE
    id: str
    payload: Mapping[str, Any]
    deleted: bool = False


@dataclass(frozen=True)
class Page:
    objects: list[ErpObject]
    cursor: dict[str, Any]  # persisted in the same transaction as the objects' effects


@dataclass(frozen=True)
class Notice:
    """One webhook notification: which object changed and how (payload when the webhook carries it)."""

    account: str | None  # the ERP company/realm/tenant it concerns (None: routed by URL)
    kind: str
    id: str
    operation: str
    payload: Mapping[str, Any] | None = None


# ------------------------------------------------------------------ canonical changes


@dataclass(frozen=True)
class Change:
    stamp: datetime | None = field(default=None, kw_only=True)

    def refs(self) -> list[tuple[str, str]]:
        """Objects that must exist in the ledger first (fetched from the ERP when missing)."""
        return []


@dataclass(frozen=True)
class UpsertCustomer(Change):
    record: CustomerRecord


@dataclass(frozen=True)
class UpsertInvoice(Change):
    record: InvoiceRecord
    close: str | None = None  # "void" or "written_off" when the ERP says so
    reason: str | None = None
    erp_balance: Decimal | None = None  # what the ERP says is still owed (reconciliation compares it)
    linked_payments: tuple[str, ...] = ()

    def refs(self) -> list[tuple[str, str]]:
        return [(CUSTOMER, self.record.customer_id)]


@dataclass(frozen=True)
class InvoiceGone(Change):
    invoice_id: str
    reason: str


@dataclass(frozen=True)
class UpsertPayment(Change):
    record: PaymentRecord

    def refs(self) -> list[tuple[str, str]]:
        return [(CUSTOMER, self.record.customer_id)] + [(INVOICE, a.invoice_id) for a in self.record.allocations]


@dataclass(frozen=True)
class PaymentGone(Change):
    payment_id: str
    reason: str


@dataclass(frozen=True)
class UpsertCreditNote(Change):
    record: CreditNoteRecord

    def refs(self) -> list[tuple[str, str]]:
        return [(CUSTOMER, self.record.customer_id)] + [(INVOICE, a.invoice_id) for a in self.record.allocations]


@dataclass(frozen=True)
class CreditNoteGone(Change):
    credit_note_id: str


class Connector(Protocol):
    name: str

    def pages(self, cursor: dict[str, Any]) -> AsyncIterator[Page]:
        """Changed objects since the cursor (a backfill when the cursor is empty), page by page."""
        ...

    async def fetch(self, kind: str, object_id: str) -> ErpObject | None:
        """The object as the ERP holds it now; None when it no longer exists."""
        ...

    async def fetch_open_invoices(self, ids: list[str]) -> list[ErpObject]:
        """Current ERP state of these invoices (reconciliation); missing ones are left out."""
        ...

    def map(self, obj: ErpObject) -> list[Change]:
        """Pure translation to ledger changes; raises MappingError for an object we cannot use."""
        ...


class WebhookReceiver(Protocol):
    """The webhook side of a connector (class-level: verification needs no connection)."""

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: datetime | None = None) -> None:
        """Raise SignatureError unless the body is signed with `secret` (and fresh, where the ERP stamps it)."""
        ...

    def notices(self, body: bytes) -> list[Notice]: ...


def parse_decimal(value: Any, where: str) -> Decimal:
    """Amounts from ERP JSON (parsed with parse_float=Decimal, so no binary float ever enters)."""
    if isinstance(value, bool) or value is None:
        raise MappingError(f"{where}: missing amount")
    try:
        return Decimal(str(value))
    except ArithmeticError:
        raise MappingError(f"{where}: not an amount: {value!r}") from None
