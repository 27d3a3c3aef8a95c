"""promise-tracker's tables: a projection of open invoices (promises and plans arrive with their issue)."""

from sqlalchemy import BigInteger, Column, Date, MetaData, String, Table

from dunning_kit.runtime import plumbing_tables

SCHEMA = "promise_tracker"
metadata = MetaData()
outbox, inbox = plumbing_tables(metadata)

invoices = Table(
    "invoices",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("number", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("due_date", Date),
    Column("status", String(20), nullable=False),
)
