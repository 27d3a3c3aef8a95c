"""promise-tracker's tables: promises, plans, the per-invoice commitment guard, receipts, and local
projections of the ledger (invoices, customers) built from dunning.ledger.v1. Money is integer minor units.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from dunning_kit.audit_log import audit_log_table
from dunning_kit.runtime import plumbing_tables

SCHEMA = "promise_tracker"
metadata = MetaData()
outbox, inbox = plumbing_tables(metadata)
audit_log_table(metadata)  # who changed what on behalf of a person (dunning_kit.audit_log)

# ---------------------------------------------------------------- projections of the ledger

invoices = Table(
    "invoices",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("number", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False, server_default="0"),
    Column("balance_minor", BigInteger, nullable=False),
    Column("due_date", Date),
    Column("status", String(20), nullable=False),
    # When (business time) nothing was owed any more; NULL while a balance is open. A promise whose
    # invoices were all settled by its deadline, however, cannot be broken.
    Column("settled_at", DateTime(timezone=True)),
    # The newest ledger version of the invoice applied: an older snapshot (a replayed dead letter) changes nothing.
    Column("ledger_version", BigInteger, nullable=False, server_default="0"),
    Index("ix_invoices_customer", "tenant_id", "customer_id"),
)

customers = Table(
    "customers",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("customer_id", String(200), primary_key=True),
    Column("name", Text),
    Column("time_zone", String(64), nullable=False, server_default="UTC"),
    Column("locale", String(20), nullable=False, server_default="en"),
    # Chronic promise-breakers: published on every promise.broken so policies can treat them differently.
    Column("broken_promise_count", Integer, nullable=False, server_default="0"),
    Column("kept_promise_count", Integer, nullable=False, server_default="0"),
    # customer.erased applied: the name is the pseudonym, notes are gone, no new promise or plan is taken.
    Column("erased_at", DateTime(timezone=True)),
    postgresql_with={"fillfactor": 80},  # counters change often: room for in-place (HOT) updates
)

# ---------------------------------------------------------------- per-tenant promise rules

promise_rules = Table(
    "promise_rules",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("max_horizon_days", Integer, nullable=False),
    Column("grace_days", Integer, nullable=False),
    Column("plan_on_missed", String(10), nullable=False),  # cancel | strike
    Column("plan_max_strikes", Integer, nullable=False),
    Column("plan_max_instalments", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# ---------------------------------------------------------------- promises and plans

plans = Table(
    "plans",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("plan_id", String(64), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("invoice_ids", ARRAY(String(200)), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("instalment_count", Integer, nullable=False),
    Column("interval", String(12), nullable=False),
    Column("recorded_by", String(20), nullable=False),
    Column("note", Text),
    # Rules are frozen at creation: a later change of the tenant's rules never rewrites a running plan.
    Column("on_missed", String(10), nullable=False),
    Column("max_strikes", Integer, nullable=False),
    Column("strikes", Integer, nullable=False, server_default="0"),
    Column("status", String(12), nullable=False),  # active | completed | defaulted | cancelled
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("reason", Text),
    Index("ix_plans_customer", "tenant_id", "customer_id"),
    Index("ix_plans_created", "tenant_id", "created_at", "plan_id"),  # the order of GET /v1/plans pages
)

promises = Table(
    "promises",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("promise_id", String(64), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("invoice_ids", ARRAY(String(200)), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("received_minor", BigInteger, nullable=False, server_default="0"),
    Column("promised_date", Date, nullable=False),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(20), nullable=False),
    Column("note", Text),
    Column("plan_id", String(64)),
    Column("instalment_index", Integer),
    Column("status", String(16), nullable=False),  # active | kept | partially_kept | broken | cancelled
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("reason", Text),
    # No index mentions status, received or resolved_at, so ending a promise can be a HOT update.
    Index("ix_promises_customer", "tenant_id", "customer_id", "created_at"),
    Index("ix_promises_created", "tenant_id", "created_at", "promise_id"),  # the order of GET /v1/promises pages
    Index("ix_promises_plan", "tenant_id", "plan_id", "instalment_index", postgresql_where=text("plan_id IS NOT NULL")),
    # Room on every page for the new version of a row: matching and the deadline check then update in place.
    postgresql_with={"fillfactor": 70},
)

# The durable deadline timers: one narrow row per active promise, due at deadline + 1 s + settle window.
# Claimed in batches with FOR UPDATE SKIP LOCKED and deleted when fired (or when the promise ends sooner).
deadline_timers = Table(
    "deadline_timers",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("promise_id", String(64), primary_key=True),
    Column("check_at", DateTime(timezone=True), nullable=False),
    Index("ix_deadline_timers_due", "check_at"),
)

# One row per invoice covered by an active promise or plan: the primary key is what makes
# "at most one active promise per invoice" hold under concurrent requests, not a read-then-write check.
commitments = Table(
    "commitments",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("holder_kind", String(8), nullable=False),  # promise | plan
    Column("holder_id", String(64), nullable=False),
    Index("ix_commitments_holder", "tenant_id", "holder_id"),
)

# Money counted toward a promise, one row per allocation (negative rows undo a reversed payment).
receipts = Table(
    "receipts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant_id", String(100), nullable=False),
    Column("promise_id", String(64), nullable=False),
    Column("source_kind", String(12), nullable=False),  # payment | credit_note | reversal
    Column("source_id", String(200), nullable=False),
    Column("invoice_id", String(200), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_receipts_promise", "tenant_id", "promise_id"),
    Index("ix_receipts_source", "tenant_id", "source_id"),
)
