"""policy-engine's tables: ledger projections, policies and assignments, dunning cases (whose next_at is the
durable timer), contact attempts, ledger freshness and the decision timeline."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from dunning_kit.audit_log import audit_log_table
from dunning_kit.runtime import plumbing_tables
from policy_engine.domain.closure import ClosureReason

SCHEMA = "policy_engine"
metadata = MetaData()
outbox, inbox = plumbing_tables(metadata)
audit_log_table(metadata)  # who changed what on behalf of a person (dunning_kit.audit_log)

customers = Table(
    "customers",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("customer_id", String(200), primary_key=True),
    # False while only known from an invoice or an API block (customer.upserted not seen yet).
    Column("known", Boolean, nullable=False, server_default=text("false")),
    Column("time_zone", String(64)),
    Column("locale", String(16), nullable=False, server_default="en"),
    Column("country", String(2)),
    Column("segment", String(100)),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("consent", JSONB, nullable=False, server_default="{}"),
    # Opt-outs (consent.revoked): kept apart from the ERP's consent flags, which never override them.
    Column("revoked", ARRAY(Text), nullable=False, server_default="{}"),
    Column("blocked", Boolean, nullable=False, server_default=text("false")),
    Column("block_reason", Text),
    # A block with an end (PUT dunning-block {until}): the block-end timer clears it then (service_layer.block_ends).
    Column("block_until", DateTime(timezone=True)),
    Column("broken_promise_count", Integer, nullable=False, server_default="0"),
    # customer.erased applied (GDPR Art. 17): dunning for this customer has stopped for good; no later event
    # (a customer.upserted of the tombstoned ledger, a new or reopened invoice) starts it again.
    Column("erased_at", DateTime(timezone=True)),
    Column("erasure_reason", String(40)),
)
Index("ix_customers_segment", customers.c.tenant_id, customers.c.segment)
# The block-end timer's claim: only the few blocks with an end are in it.
Index("ix_customers_block_until", customers.c.block_until, postgresql_where=customers.c.block_until.isnot(None))

policies = Table(
    "policies",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("policy_id", String(80), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("document", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Who published the version from the workspace (Dunning-Actor); NULL when an API key alone did.
    Column("author_sub", String(255)),
    Column("author_name", String(300)),
    # Set on every version when the policy is deleted: cases bound to it move to another policy.
    Column("retired_at", DateTime(timezone=True)),
)

assignments = Table(
    "policy_assignments",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("scope", String(10), primary_key=True),  # customer | segment
    Column("target", String(200), primary_key=True),
    Column("policy_id", String(80), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
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
    Column("status", String(10), nullable=False, server_default="open"),  # open | idle | closed
    Column("pause_reasons", ARRAY(Text), nullable=False, server_default="{}"),
    Column("promise_ids", ARRAY(Text), nullable=False, server_default="{}"),
    Column("plan_id", String(200)),
    Column("block_reason", Text),
    # The invoice block's end (Case.block_until): the block-end timer clears the block then.
    Column("block_until", DateTime(timezone=True)),
    Column("policy_id", String(80)),
    Column("policy_version", Integer),
    Column("next_step", String(80)),
    Column("planned_at", DateTime(timezone=True)),
    # The durable timer: when the engine next looks at this case (NULL: nothing pending or paused).
    Column("next_at", DateTime(timezone=True)),
    Column("shift_days", Integer, nullable=False, server_default="0"),
    Column("done_steps", ARRAY(Text), nullable=False, server_default="{}"),
    Column("last_offset", Integer),
    Column("last_tone", String(20)),
    Column("last_sent_at", DateTime(timezone=True)),
    Column("last_step_id", String(36)),
    Column("went_late", Boolean, nullable=False, server_default=text("false")),
    Column("in_default", Boolean, nullable=False, server_default=text("false")),
    Column("compensation_charged", Boolean, nullable=False, server_default=text("false")),
    Column("replan", Boolean, nullable=False, server_default=text("false")),
    # When a reminder first reached the debtor (notification.sent on email, sms, voice or letter), and whether a
    # hand-off to collections waits for that (hand_off_requires_reminder).
    Column("reminded_at", DateTime(timezone=True)),
    Column("awaiting_reminder", Boolean, nullable=False, server_default=text("false")),
    Column("closed_reason", Text),  # the sentence shown (timeline, API); rules read `closure`
    Column("closure", String(16)),  # domain.closure.ClosureReason: why the case is closed
    # W3C traceparent of the event that opened the case: a step fired days later continues that trace.
    Column("trace", String(64)),
    # Case.ledger_version: the newest ledger version of the invoice applied; older snapshots are ignored.
    Column("ledger_version", BigInteger, nullable=False, server_default="0"),
    CheckConstraint(
        "closure IN (" + ", ".join(f"'{c.value}'" for c in ClosureReason) + ")", name="ck_cases_closure_known"
    ),
    # A closed case always says why, and only a closed one has a closure.
    CheckConstraint("(status = 'closed') = (closure IS NOT NULL)", name="ck_cases_closure_iff_closed"),
)
# Claimed in (next_at, customer) order so one customer's invoices due together land in one batch.
Index(
    "ix_cases_next_at",
    cases.c.next_at,
    cases.c.tenant_id,
    cases.c.customer_id,
    postgresql_where=cases.c.next_at.isnot(None),
)
Index("ix_cases_customer", cases.c.tenant_id, cases.c.customer_id)
Index("ix_cases_block_until", cases.c.block_until, postgresql_where=cases.c.block_until.isnot(None))
# The hand-offs list (GET /v1/hand-offs): a tenant's handed-off cases in hand-off order, without the others.
Index(
    "ix_cases_handed_off",
    cases.c.tenant_id,
    cases.c.last_sent_at,
    cases.c.invoice_id,
    postgresql_where=cases.c.closure == ClosureReason.HANDED_OFF.value,
)

# A person completed a hand-off to collections (POST /v1/hand-offs/{invoice_id}/acknowledge): what they did with
# the file. At most one per case (the primary key: a second is refused). Their note is on the timeline only
# (detail.note, cut on erasure), never here.
hand_off_acknowledgements = Table(
    "hand_off_acknowledgements",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("outcome", String(30), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True), nullable=False),
    Column("acknowledged_by_sub", String(255)),
    Column("acknowledged_by_name", String(300)),
    CheckConstraint(
        "outcome IN ('sent_to_agency', 'kept_in_house', 'written_off_recommended')", name="ck_hand_off_outcome"
    ),
)

contacts = Table(
    "contact_attempts",
    metadata,
    Column("delivery_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("tenant_id", String(100), nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_contacts_debtor", contacts.c.tenant_id, contacts.c.customer_id, contacts.c.channel, contacts.c.at)

# Telephone calls with the debtor that a collector logged (POST /v1/customers/{id}/calls). Each one is also a row per
# invoice in contact_attempts (delivery_id `call:<id>`, channel voice), so the contact caps count it; a conversation
# holds every call about its invoices for 7 days (domain.conversations).
calls = Table(
    "calls",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("call_id", String(36), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("invoice_ids", ARRAY(Text), nullable=False, server_default="{}"),
    Column("note", Text),
    Column("logged_by", Text),
    Column("logged_at", DateTime(timezone=True), nullable=False),
)
Index("ix_calls_customer", calls.c.tenant_id, calls.c.customer_id, calls.c.at)

ledger_freshness = Table(
    "ledger_freshness",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("connector", String(100), primary_key=True),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_report_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    # Only a scheduled connector's silence makes the ledger stale; a file import's never does (see
    # import_cadences for tenants that declare how often they import).
    Column("scheduled", Boolean, nullable=False, server_default=text("true")),
)

# Tenants that import files (or push through the API) and declare how often a fresh import must arrive: past
# that, their ledger counts as stale like a scheduled connector's.
import_cadences = Table(
    "import_cadences",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("expected_every_hours", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

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
