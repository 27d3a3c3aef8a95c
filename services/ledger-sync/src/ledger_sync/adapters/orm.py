"""ledger-sync's tables: the canonical ledger per tenant. Money is stored in integer minor units."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from dunning_kit.runtime import plumbing_tables

SCHEMA = "ledger_sync"
metadata = MetaData()
outbox, inbox = plumbing_tables(metadata)

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
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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
    Column("issue_date", Date, nullable=False),
    Column("due_date", Date),
    Column("terms", String(100)),
    Column("status", String(20), nullable=False, server_default="open"),
    Column("disputed", Boolean, nullable=False, server_default="false"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.customer_id"]),
)
Index("ix_invoices_customer", invoices.c.tenant_id, invoices.c.customer_id)

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
    Column("status", String(20), nullable=False, server_default="applied"),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.customer_id"]),
)

allocations = Table(
    "allocations",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("payment_id", String(200), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    ForeignKeyConstraint(["tenant_id", "payment_id"], ["payments.tenant_id", "payments.payment_id"]),
    ForeignKeyConstraint(["tenant_id", "invoice_id"], ["invoices.tenant_id", "invoices.invoice_id"]),
)
