"""insights' tables: the accounts-receivable read model built from the event stream (and, to backfill, from the
other services' export APIs). Money is exact NUMERIC with its currency in the row; dates are the business dates
the facts carry (UTC dates of instants where a fact has no date of its own).

How a balance is kept so any "as of" works: every change of an invoice's balance is one row of `invoice_changes`
with the business date it happened and a natural key (`issue`, `payment:<id>`, `credit:<id>`, ...), so a fact
that arrives twice (redelivery, or once from a backfill and again from the stream) is one row. An invoice's
balance as of D is the sum of its changes dated on or before D. `ar_daily` is that sum per tenant, currency,
due date and change date, kept in the same transaction as the changes: tenant-level aging and DSO read a few
thousand rows of it instead of every invoice.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from dunning_kit.audit_log import audit_log_table
from dunning_kit.runtime import plumbing_tables

SCHEMA = "insights"
metadata = MetaData()
outbox, inbox = plumbing_tables(metadata)
audit_log_table(metadata)  # who changed what on behalf of a person (dunning_kit.audit_log)

AMOUNT = Numeric(24, 4)  # exact; four places cover every ISO 4217 exponent (CLF)
RATE = Numeric(24, 10)

# ---------------------------------------------------------------- tenant settings and FX

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    # Figures across currencies are converted into this one, only with rates the tenant supplied.
    Column("reporting_currency", String(3)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

fx_rates = Table(
    "fx_rates",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("quote_currency", String(3), primary_key=True),  # the reporting currency the rate converts into
    Column("currency", String(3), primary_key=True),  # 1 unit of this = `rate` units of quote_currency
    Column("rate_date", Date, primary_key=True),
    Column("rate", RATE, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# ---------------------------------------------------------------- the ledger, as the stream told it

customers = Table(
    "customers",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("customer_id", String(200), primary_key=True),
    Column("name", Text),
    Column("segment", String(100)),  # figures group by the segment a customer has now
    Column("currency", String(3)),  # of its latest invoice
    Column("terms", String(100)),  # of its latest invoice
    Column("erased", Boolean, nullable=False, server_default="false"),
    Index("ix_customers_segment", "tenant_id", "segment"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("number", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", AMOUNT, nullable=False),
    Column("balance", AMOUNT, nullable=False),  # now (the sum of all its changes)
    Column("issue_date", Date, nullable=False),
    # The due date aging counts from: the invoice's due date, or its issue date when it has none.
    Column("due_date", Date, nullable=False),
    Column("terms", String(100)),
    Column("status", String(20), nullable=False),  # open | paid | void | written_off
    Column("disputed", Boolean, nullable=False, server_default="false"),
    # The newest ledger version applied (dunning_events.events.supersedes): an older snapshot changes nothing.
    Column("ledger_version", BigInteger, nullable=False, server_default="0"),
    Column("settled_on", Date),  # the day payments and credits brought the balance to zero; NULL while open
    Column("closed_on", Date),  # the day it was voided or written off
    # The latest dunning step about it and the next one the policy engine planned (portfolio view).
    Column("last_step_id", String(200)),
    Column("last_step_name", String(100)),
    Column("last_step_at", DateTime(timezone=True)),
    Column("next_step_name", String(100)),
    Column("next_step_at", DateTime(timezone=True)),
    # A customer's invoices newest first: its currency and terms are those of its latest invoice.
    Index("ix_invoices_customer", "tenant_id", "customer_id", "issue_date", "invoice_id"),
    Index("ix_invoices_open_due", "tenant_id", "due_date", "invoice_id", postgresql_where=text("balance <> 0")),
    Index("ix_invoices_issue", "tenant_id", "issue_date"),
    # What fell due in a period, paid or not (the collection figure).
    Index("ix_invoices_due", "tenant_id", "due_date"),
    # The portfolio's default order (largest balance first) and the worklist's disputed invoices, at a million
    # open invoices without sorting them all.
    Index("ix_invoices_open_balance", "tenant_id", "balance", "invoice_id", postgresql_where=text("balance <> 0")),
    Index(
        "ix_invoices_disputed", "tenant_id", "balance", "invoice_id", postgresql_where=text("disputed AND balance <> 0")
    ),
)

# One row per change of an invoice's balance. `amount` is signed: + raises the balance (the invoice's issue, a
# reversed payment), - lowers it (payment, credit, void, write-off). `open_delta` is +1 when the change opens the
# invoice (balance from zero to non-zero), -1 when it closes it, else 0: the sum to a date is "open at that date".
# Keys: issue | prior (settled before the platform saw it) | payment:<payment_id> | reversal:<payment_id> |
# credit:<credit_note_id> | void | write_off.
invoice_changes = Table(
    "invoice_changes",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("change_key", String(250), primary_key=True),
    Column("kind", String(12), nullable=False),  # issue | prior | payment | reversal | credit | void | write_off
    Column("on_date", Date, nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("open_delta", SmallInteger, nullable=False, server_default="0"),
    Index("ix_invoice_changes_date", "tenant_id", "on_date"),
    # The write-offs of a period (few among the changes): the collection figure.
    Index("ix_invoice_changes_write_off", "tenant_id", "on_date", postgresql_where=text("kind = 'write_off'")),
)

# Sum of invoice_changes per tenant, currency, due date and change date, maintained set-wise with them.
ar_daily = Table(
    "ar_daily",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("due_date", Date, primary_key=True),
    Column("on_date", Date, primary_key=True),
    Column("amount", AMOUNT, nullable=False),
    Column("open_count", BigInteger, nullable=False),
)

# Credit sales: totals of invoices that are not void, by issue date (a void invoice was never a sale; a
# written-off one was).
sales_daily = Table(
    "sales_daily",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("issue_date", Date, primary_key=True),
    Column("amount", AMOUNT, nullable=False),
    Column("invoice_count", BigInteger, nullable=False),
)

disputes = Table(
    "disputes",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("opened_at", DateTime(timezone=True), primary_key=True),
    Column("resolved_at", DateTime(timezone=True)),
)

# ---------------------------------------------------------------- promises and plans (promise-tracker)

promises = Table(
    "promises",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("promise_id", String(64), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("plan_id", String(64)),
    Column("invoice_ids", ARRAY(String(200)), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("received", AMOUNT),  # when kept or broken
    Column("promised_date", Date, nullable=False),
    Column("recorded_by", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", String(12), nullable=False),  # open | kept | broken | cancelled
    Column("partially_kept", Boolean, nullable=False, server_default="false"),
    Column("ended_at", DateTime(timezone=True)),
    Index("ix_promises_created", "tenant_id", "created_at"),
)

plans = Table(
    "plans",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("plan_id", String(64), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("invoice_ids", ARRAY(String(200)), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", AMOUNT, nullable=False),
    Column("instalments", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", String(12), nullable=False),  # active | completed | defaulted
    Column("ended_at", DateTime(timezone=True)),
    Index("ix_plans_created", "tenant_id", "created_at"),
)

# ---------------------------------------------------------------- dunning steps and deliveries

steps = Table(
    "steps",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("step_id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("policy_id", String(200), nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("step_name", String(100), nullable=False),
    Column("tone", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_due", AMOUNT, nullable=False),
    Column("channels", ARRAY(String(12)), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),  # the step.due event's business time
    Column("sent_on", Date, nullable=False),  # its UTC date: "paid within N days after it" counts from here
    # The step the engine planned after it (`next_step` of the event): an invoice that arrives after its steps
    # (a backfill, or the steps topic running ahead) takes its last and next step from here.
    Column("next_step_name", String(100)),
    Column("next_step_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Index("ix_steps_sent", "tenant_id", "sent_on"),
)

# The invoices a step was about, with each one's balance when the step went out.
step_invoices = Table(
    "step_invoices",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("step_id", String(200), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("balance", AMOUNT, nullable=False),
    Index("ix_step_invoices_invoice", "tenant_id", "invoice_id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("delivery_id", String(200), primary_key=True),
    Column("step_id", String(200), nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("channel", String(12), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("bounced_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    Column("skipped_at", DateTime(timezone=True)),
    Column("held_at", DateTime(timezone=True)),
    Index("ix_deliveries_step", "tenant_id", "step_id"),
    Index("ix_deliveries_customer", "tenant_id", "customer_id", "channel", "sent_at"),
    Index("ix_deliveries_sent", "tenant_id", "sent_at"),  # contact volume per day reads a period's sends
)

consent_revocations = Table(
    "consent_revocations",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("customer_id", String(200), primary_key=True),
    Column("channel", String(12), primary_key=True),
    Column("revoked_at", DateTime(timezone=True), primary_key=True),
    Column("reason", String(20), nullable=False),
)

# A channel a contact rule held back: the policy engine's contact caps and consent (dunning.step.held), the
# notifier's quiet hours (notification.held). Keyed by the event that said so.
contact_holds = Table(
    "contact_holds",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("hold_key", String(200), primary_key=True),
    Column("channel", String(12), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("held_on", Date, nullable=False),
    Column("rule", String(20), nullable=False),  # contact_cap | consent | quiet_hours | other
    Column("reason", Text),
    Index("ix_contact_holds_day", "tenant_id", "held_on"),
)

# ---------------------------------------------------------------- backfill

# Per tenant and source (ledger-sync invoices, ledger-sync customers, each service's event export): where the
# backfill stands, so a restarted backfill goes on from its cursor and a finished one is not run again.
backfills = Table(
    "backfills",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("source", String(60), primary_key=True),
    Column("cursor", Text),
    Column("items", BigInteger, nullable=False, server_default="0"),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("error", Text),
)

# Never holds a row: its table lock is how the stream's ledger batches and a backfill's pages stay apart
# (adapters/apply_ledger.py). Batches take it in ROW EXCLUSIVE mode and pages in SHARE mode: batches run beside
# batches and pages beside pages (a backfill applies two at a time), never a batch beside a page.
ledger_gate = Table("ledger_gate", metadata, Column("id", SmallInteger, primary_key=True))
