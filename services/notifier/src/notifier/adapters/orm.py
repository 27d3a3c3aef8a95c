"""notifier's tables: projections (customers, invoice balances) and one delivery record per idempotency key."""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from dunning_kit.runtime import plumbing_tables

SCHEMA = "notifier"
metadata = MetaData()
outbox, inbox = plumbing_tables(metadata)

customers = Table(
    "customers",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("customer_id", String(200), primary_key=True),
    Column("name", Text, nullable=False),
    Column("locale", String(16), nullable=False, server_default="en"),
    Column("time_zone", String(64), nullable=False, server_default="UTC"),
    Column("contacts", JSONB, nullable=False, server_default="[]"),
)

invoice_balances = Table(
    "invoice_balances",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("number", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", String(100), nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("step_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    # (tenant, customer, step, channel): created before the provider call, so nothing is sent twice.
    Column("idempotency_key", String(400), nullable=False, unique=True),
    Column("status", String(20), nullable=False, server_default="pending"),
    Column("step", JSONB, nullable=False),
    Column("recipient", Text),
    Column("subject", Text),
    Column("body_text", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("error", Text),
    Column("provider_message_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_deliveries_pending", deliveries.c.next_attempt_at, postgresql_where=deliveries.c.status == "pending")
