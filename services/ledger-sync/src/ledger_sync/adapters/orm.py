"""ledger-sync's tables: the canonical ledger per tenant, plus sync state. Money is integer minor units.

Invariant kept by the service layer (and checked by tests): for every invoice
    balance_minor = total_minor - Σ allocations - Σ credit_allocations - cancelled_minor
where cancelled_minor is what a void or a write-off took off the books.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from dunning_kit.audit_log import audit_log_table
from dunning_kit.idempotency import TABLE as IDEMPOTENCY_TABLE
from dunning_kit.runtime import plumbing_tables

SCHEMA = "ledger_sync"
metadata = MetaData()
outbox, inbox = plumbing_tables(metadata)
audit_log_table(metadata)  # who changed what on behalf of a person (dunning_kit.audit_log)

customers = Table(
    "customers",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("customer_id", String(200), primary_key=True),
    Column("name", Text, nullable=False),
    Column("contacts", JSONB, nullable=False, server_default="[]"),
    Column("time_zone", String(64), nullable=False, server_default="UTC"),
    Column("locale", String(16), nullable=False, server_default="en"),
    Column("country", String(2)),
    Column("tags", JSONB, nullable=False, server_default="[]"),
    Column("segment", String(100)),
    Column("consent", JSONB, nullable=False, server_default="{}"),
    Column("credit_hold", Boolean, nullable=False, server_default="false"),
    # Which door the record came through (api, csv, quickbooks, ...) and the ERP's own change stamp,
    # so an older copy arriving late (webhook after CDC) never overwrites a newer one.
    Column("source", String(40), nullable=False, server_default="api"),
    Column("erp_updated_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A customer whose personal data was erased (GDPR Art. 17): every later write of that customer, whatever door it
# comes through (API, CSV, ERP sync, webhook), keeps the pseudonym and drops names and contacts, so nothing brings
# the person back. The customer row itself stays: the money facts (invoices, payments, credits) refer to it.
customer_tombstones = Table(
    "customer_tombstones",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("customer_id", String(200), primary_key=True),
    Column("pseudonym", String(100), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.customer_id"]),
)

invoices = Table(
    "invoices",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("number", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("cancelled_minor", BigInteger, nullable=False, server_default="0"),
    Column("issue_date", Date, nullable=False),
    Column("due_date", Date),
    Column("terms", String(100)),
    Column("status", String(20), nullable=False, server_default="open"),
    Column("disputed", Boolean, nullable=False, server_default="false"),
    Column("dispute_reason", Text),
    Column("source", String(40), nullable=False, server_default="api"),
    Column("erp_updated_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # One higher with every change its events report (InvoiceState.version): consumers drop older snapshots.
    Column("version", BigInteger, nullable=False, server_default="1"),
    # The last void or write-off: its instant (the `occurred_at` of its invoice.voided) and what the closes took
    # off the books as their events saw it (the balance just before each, before a void hands payments back), so
    # the invoice export dates the close as the stream does. Kept when a reversal reopens a write-off: it happened.
    Column("closed_at", DateTime(timezone=True)),
    Column("closed_minor", BigInteger),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.customer_id"]),
    CheckConstraint("balance_minor >= 0", name="ck_invoices_balance_not_negative"),
    CheckConstraint("balance_minor <= total_minor", name="ck_invoices_balance_within_total"),
    CheckConstraint("status IN ('open','paid','void','written_off')", name="ck_invoices_status"),
)
Index("ix_invoices_customer", invoices.c.tenant_id, invoices.c.customer_id)
Index(
    "ix_invoices_open_due",
    invoices.c.tenant_id,
    invoices.c.due_date,
    postgresql_where=text("status = 'open'"),
)

payments = Table(
    "payments",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("payment_id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("unapplied_minor", BigInteger, nullable=False),
    Column("received_on", Date, nullable=False),
    Column("reference", String(200)),
    Column("status", String(20), nullable=False, server_default="applied"),
    Column("reversal_reason", Text),
    # The `occurred_at` of its payment.reversed (a bounce or charge-back; an edit at the source is not one).
    Column("reversed_at", DateTime(timezone=True)),
    Column("source", String(40), nullable=False, server_default="api"),
    Column("erp_updated_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.customer_id"]),
    CheckConstraint("unapplied_minor >= 0", name="ck_payments_unapplied_not_negative"),
    CheckConstraint("status IN ('applied','reversed')", name="ck_payments_status"),
)
Index("ix_payments_customer", payments.c.tenant_id, payments.c.customer_id)

allocations = Table(
    "allocations",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("payment_id", String(200), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    ForeignKeyConstraint(["tenant_id", "payment_id"], ["payments.tenant_id", "payments.payment_id"]),
    ForeignKeyConstraint(["tenant_id", "invoice_id"], ["invoices.tenant_id", "invoices.invoice_id"]),
    CheckConstraint("amount_minor > 0", name="ck_allocations_positive"),
)
Index("ix_allocations_invoice", allocations.c.tenant_id, allocations.c.invoice_id)

credit_notes = Table(
    "credit_notes",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("credit_note_id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("number", String(100)),
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("remaining_minor", BigInteger, nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("status", String(20), nullable=False, server_default="open"),
    Column("source", String(40), nullable=False, server_default="api"),
    Column("erp_updated_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.customer_id"]),
    CheckConstraint("remaining_minor >= 0", name="ck_credit_notes_remaining_not_negative"),
)

credit_allocations = Table(
    "credit_allocations",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("credit_note_id", String(200), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    ForeignKeyConstraint(["tenant_id", "credit_note_id"], ["credit_notes.tenant_id", "credit_notes.credit_note_id"]),
    ForeignKeyConstraint(["tenant_id", "invoice_id"], ["invoices.tenant_id", "invoices.invoice_id"]),
    CheckConstraint("amount_minor > 0", name="ck_credit_allocations_positive"),
)
Index("ix_credit_allocations_invoice", credit_allocations.c.tenant_id, credit_allocations.c.invoice_id)

# Allocations a payment reversal or an invoice's void took off an invoice, as they stood then. The invariant reads
# `allocations` only (the money is no longer on the invoice); the invoice export reads these too, because the
# stream told consumers the money was applied (payment.applied / credit_note.applied) and a reversal is dated by
# its payment.reversed, a void's release by nothing at all (invoice.voided cancels the balance the events knew).
released_allocations = Table(
    "released_allocations",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("document", String(20), primary_key=True),  # payment | credit_note
    Column("document_id", String(200), primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("cause", String(20), nullable=False),  # reversal | void
    Column("released_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["tenant_id", "invoice_id"], ["invoices.tenant_id", "invoices.invoice_id"]),
    CheckConstraint("document IN ('payment','credit_note')", name="ck_released_allocations_document"),
    CheckConstraint("cause IN ('reversal','void')", name="ck_released_allocations_cause"),
)

# Every dispute period of an invoice: opened_at / resolved_at are the `occurred_at` of its dispute.opened /
# dispute.resolved (at most one period per invoice is open: `invoices.disputed`).
invoice_disputes = Table(
    "invoice_disputes",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("opened_at", DateTime(timezone=True), primary_key=True),
    Column("resolved_at", DateTime(timezone=True)),
    ForeignKeyConstraint(["tenant_id", "invoice_id"], ["invoices.tenant_id", "invoices.invoice_id"]),
)

# Idempotency-Key on POST: the first response is stored in the write's own transaction and replayed (the kit's
# table, added by plumbing_tables; dunning_kit.idempotency).
idempotency_keys = metadata.tables[IDEMPOTENCY_TABLE]

# One row per tenant and connector: its settings and secrets, cursor, schedule and freshness.
connections = Table(
    "connections",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("connector", String(40), primary_key=True),
    # The ERP's own id of the company (QBO realmId, Xero tenantId, Stripe account): routes webhooks.
    Column("external_account", String(200)),
    Column("config", JSONB, nullable=False, server_default="{}"),
    Column("credentials", JSONB, nullable=False, server_default="{}"),
    Column("cursor", JSONB, nullable=False, server_default="{}"),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("sync_interval_s", Integer, nullable=False, server_default="900"),
    Column("next_sync_at", DateTime(timezone=True)),
    Column("reconcile_interval_s", Integer, nullable=False, server_default="86400"),
    Column("next_reconcile_at", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("records_changed", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# One tenant per ERP company: webhooks are routed by (connector, external_account), so a second tenant naming
# the same realm would divert the first one's webhooks. The configure route answers 409.
UQ_CONNECTIONS_ACCOUNT = "uq_connections_account"
Index(
    UQ_CONNECTIONS_ACCOUNT,
    connections.c.connector,
    connections.c.external_account,
    unique=True,
    postgresql_where=text("external_account IS NOT NULL"),
)
Index("ix_connections_next_sync", connections.c.next_sync_at, postgresql_where=text("enabled"))

# Webhook notifications are stored at once (the ERP wants a fast 200) and applied by a timer loop.
webhook_notices = Table(
    "webhook_notices",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant_id", String(100), nullable=False),
    Column("connector", String(40), nullable=False),
    Column("entity", String(40), nullable=False),
    Column("entity_id", String(200), nullable=False),
    Column("operation", String(40), nullable=False),
    Column("payload", JSONB),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("processed_at", DateTime(timezone=True)),
    Column("error", Text),
)
Index("ix_webhook_notices_due", webhook_notices.c.due_at, postgresql_where=text("processed_at IS NULL"))

# An ERP record we could not map or apply: kept with its error so the sync goes on and a human can look.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant_id", String(100), nullable=False),
    Column("connector", String(40), nullable=False),
    Column("entity", String(40), nullable=False),
    Column("entity_id", String(200)),
    Column("error", Text, nullable=False),
    Column("payload", JSONB),
    Column("quarantined_at", DateTime(timezone=True), nullable=False),
)
# (tenant, connector, id) is the order of its cursor pages.
Index("ix_quarantine_tenant", quarantine.c.tenant_id, quarantine.c.connector, quarantine.c.id)

# What the last reconciliation found that re-applying the ERP's records could not explain.
drift = Table(
    "drift",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant_id", String(100), nullable=False),
    Column("connector", String(40), nullable=False),
    Column("invoice_id", String(200), nullable=False),
    Column("ledger_balance_minor", BigInteger, nullable=False),
    Column("erp_balance_minor", BigInteger, nullable=False),
    Column("found_at", DateTime(timezone=True), nullable=False),
)
Index("ix_drift_tenant", drift.c.tenant_id, drift.c.connector, drift.c.id)  # its cursor pages' order
