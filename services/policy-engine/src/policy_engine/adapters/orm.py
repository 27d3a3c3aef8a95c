"""policy-engine's tables: projections of the ledger, dunning cases, durable timers, the decision timeline."""

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from dunning_kit.runtime import plumbing_tables

SCHEMA = "policy_engine"
metadata = MetaData()
outbox, inbox = plumbing_tables(metadata)

customers = Table(
    "customers",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("customer_id", String(200), primary_key=True),
    Column("time_zone", String(64), nullable=False, server_default="UTC"),
    Column("locale", String(16), nullable=False, server_default="en"),
    Column("country", String(2)),
    Column("consent", JSONB, nullable=False, server_default="{}"),
)

cases = Table(
    "cases",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("number", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("due_date", Date),
    Column("status", String(20), nullable=False, server_default="open"),
    Column("closed_reason", Text),
)

timers = Table(
    "timers",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", String(100), nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("invoice_id", String(200), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("step_name", String(100), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False, server_default="pending"),
    Column("fired_at", DateTime(timezone=True)),
)
# Only pending timers are ever scanned by due time.
Index("ix_timers_pending_due", timers.c.due_at, postgresql_where=timers.c.status == "pending")
Index("ix_timers_invoice", timers.c.tenant_id, timers.c.invoice_id)

timeline = Table(
    "timeline",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", String(100), nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("invoice_id", String(200)),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("step_name", String(100)),
    Column("reason", Text, nullable=False),
    Column("detail", JSONB, nullable=False, server_default="{}"),
)
Index("ix_timeline_invoice", timeline.c.tenant_id, timeline.c.invoice_id, timeline.c.id)
Index("ix_timeline_customer", timeline.c.tenant_id, timeline.c.customer_id, timeline.c.id)
