"""Request and response bodies of the ledger-sync API v1 (requests are the canonical ledger records)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

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


# ---------------------------------------------------------------------------------------------- connectors


class ConnectorConfigured(BaseModel):
    connector: str
    enabled: bool


class ConnectorOut(BaseModel):
    connector: str
    external_account: str | None
    config: dict[str, Any] = Field(description="Non-secret settings")
    credentials: list[str] = Field(description="Which secrets are set (never their values)")
    cursor: dict[str, Any] = Field(description="Where the next incremental sync starts")
    enabled: bool
    next_sync_at: str | None
    last_success_at: str | None
    last_error: str | None


class SyncOutcomeOut(BaseModel):
    connector: str
    succeeded: bool
    pages: int
    changed: int
    quarantined: int
    error: str | None
    skipped: bool = Field(description="Another run of this connector was in progress (answered 409)")
    drift: int


class QuarantinedOut(BaseModel):
    entity: str
    entity_id: str | None
    error: str
    payload: Any = Field(description="The ERP's record as received")
    quarantined_at: str


class DriftOut(BaseModel):
    invoice_id: str
    ledger_balance_minor: int
    erp_balance_minor: int
    found_at: str


# ---------------------------------------------------------------------------------------------- imports, freshness


class ImportColumn(BaseModel):
    column: str
    required: bool
    description: str


class SkippedLine(BaseModel):
    line: int
    errors: list[dict[str, Any]] = Field(description="`{column, reason}` of every error on the line")


class ImportReportOut(BaseModel):
    kind: str
    partial: bool
    committed: bool
    rows: int
    imported: int
    unchanged: int
    events: int
    error_count: int
    errors_truncated: bool
    skipped: list[SkippedLine] = Field(default_factory=list, description="With `partial`: the rows left out")


class ConnectorFreshness(BaseModel):
    connector: str
    scheduled: bool
    last_successful_sync_at: str | None
    age_seconds: float | None
    last_attempt_at: str | None
    last_error: str | None
    records_changed: int


class FreshnessOut(BaseModel):
    connectors: list[ConnectorFreshness]


# The bodies a CSV import accepts (read from the raw request, so FastAPI cannot infer them).
IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "description": "The CSV file, UTF-8 with a header row"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


# ---------------------------------------------------------------------------------------------- exports
# The items of /v1/exports/* (a backfill's source): their JSON is built by PostgreSQL (adapters/ledger_export.py)
# exactly as these models serialise; money is a decimal string in the invoice's currency.


class ExportCustomer(BaseModel):
    customer_id: str
    name: str = Field(description="The customer's name; the pseudonym once erased")
    segment: str | None
    erased: bool = Field(description="Its personal data was erased (GDPR Art. 17)")


class ExportPayment(BaseModel):
    payment_id: str
    received_on: date
    amount: str = Field(description="What the payment allocated to this invoice (decimal string)")
    reversed_at: datetime | None = Field(
        description="The instant it was reversed (the occurred_at of its payment.reversed); null if it stands"
    )


class ExportCredit(BaseModel):
    credit_note_id: str
    issued_on: date
    amount: str = Field(description="What the credit note allocated to this invoice (decimal string)")


class ExportClose(BaseModel):
    status: Literal["void", "written_off"]
    closed_at: datetime = Field(description="The occurred_at of its invoice.voided (the last close)")
    amount: str = Field(description="The balance the close cancelled, as its event saw it (decimal string)")


class ExportDispute(BaseModel):
    opened_at: datetime = Field(description="The occurred_at of its dispute.opened")
    resolved_at: datetime | None = Field(description="The occurred_at of its dispute.resolved; null while open")


class ExportInvoice(BaseModel):
    invoice_id: str
    customer_id: str
    number: str
    currency: str
    total: str
    balance: str
    issue_date: date
    due_date: date | None
    terms: str | None
    status: Literal["open", "paid", "void", "written_off"]
    disputed: bool
    version: int = Field(description="The invoice's version (as on its events): a consumer keeps the newest")
    payments: list[ExportPayment]
    credits: list[ExportCredit]
    closed: ExportClose | None
    disputes: list[ExportDispute]
