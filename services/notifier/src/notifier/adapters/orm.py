"""notifier's tables: projections (customers, invoice balances, ledger positions), one delivery record per
idempotency key, tenant configuration and templates, the suppression list, collector tasks and receipts."""

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
from sqlalchemy.dialects.postgresql import JSONB, UUID

from dunning_kit.audit_log import audit_log_table
from dunning_kit.runtime import plumbing_tables

SCHEMA = "notifier"
metadata = MetaData()
outbox, inbox = plumbing_tables(metadata)
audit_log_table(metadata)  # who changed what on behalf of a person (dunning_kit.audit_log)

customers = Table(
    "customers",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("customer_id", String(200), primary_key=True),
    Column("name", Text, nullable=False),
    Column("locale", String(16), nullable=False, server_default="en"),
    Column("time_zone", String(64), nullable=False, server_default="UTC"),
    Column("country", String(2)),
    Column("contacts", JSONB, nullable=False, server_default="[]"),
    Column("consent", JSONB, nullable=False, server_default="{}"),
    Column("postal_address", JSONB),
    # customer.erased applied: the name is the pseudonym, no contacts or address are held, nothing is sent.
    Column("erased_at", DateTime(timezone=True)),
)

invoice_balances = Table(
    "invoice_balances",
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
    # The newest ledger version of the invoice applied: an older snapshot (a replayed dead letter) changes nothing.
    Column("ledger_version", BigInteger, nullable=False, server_default="0"),
)
Index("ix_invoice_balances_customer", invoice_balances.c.tenant_id, invoice_balances.c.customer_id)

# How far the ledger projection has applied each partition of dunning.ledger.v1, written in the same
# transaction as the projection: the dispatcher compares it with the broker's end offsets before a send.
ledger_positions = Table(
    "ledger_positions",
    metadata,
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
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
    # pending -> claimed -> sending -> sent -> delivered | bounced; or failed | skipped | cancelled | unknown;
    # claimed -> held (outside the contact window) -> pending (dunning.step.replanned) | cancelled.
    # `claimed`: rendered, not yet handed to a provider (safe to send after a crash); `sending`: the provider
    # call may have started (never sent again; `unknown` if no outcome is recorded).
    Column("status", String(20), nullable=False, server_default="pending"),
    Column("step", JSONB, nullable=False),
    Column("channel_mode", String(10), nullable=False, server_default="all"),
    Column("fallback_channels", JSONB, nullable=False, server_default="[]"),
    Column("provider", String(40)),
    Column("recipient", Text),
    Column("template_id", String(100)),
    Column("locale", String(16)),
    Column("subject", Text),
    Column("body_text", Text),
    Column("body_html", Text),
    # When the bodies above were rendered (the injected clock); NULL once no rendered body is held (none yet,
    # or deleted by the retention job or an erasure). The contact fact (channel, step, sent_at) stays.
    Column("rendered_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("error", Text),
    Column("provider_message_id", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("correlation_id", UUID(as_uuid=True)),  # of the step event: one flow from ERP to the message
    # W3C context of the step event's consumer span: the send, minutes or days later, continues that trace.
    Column("trace_context", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Which dispatcher batch holds a `claimed` row, and until when (database time): after that another may take it.
    # claimed_until is set exactly while the row is `claimed` (every way out clears it).
    Column("claim_token", UUID(as_uuid=True)),
    Column("claimed_until", DateTime(timezone=True)),
)
Index("ix_deliveries_pending", deliveries.c.next_attempt_at, postgresql_where=deliveries.c.status == "pending")
Index("ix_deliveries_claimed", deliveries.c.claimed_until, postgresql_where=deliveries.c.claimed_until.isnot(None))
Index("ix_deliveries_sending", deliveries.c.updated_at, postgresql_where=deliveries.c.status == "sending")
# Partial: a delivery is written four times (pending, claimed, sending, sent) and each version went into every
# index; these two are only ever searched for a value, which is NULL until the send / the claim.
Index(
    "ix_deliveries_provider_message",
    deliveries.c.provider_message_id,
    postgresql_where=deliveries.c.provider_message_id.isnot(None),
)
# The order of GET /v1/deliveries cursor pages (newest first, the id breaks ties).
Index("ix_deliveries_tenant_created", deliveries.c.tenant_id, deliveries.c.created_at, deliveries.c.id)
Index("ix_deliveries_step", deliveries.c.tenant_id, deliveries.c.step_id)
# The retention job's work list: only rows still holding a rendered body are in it.
Index("ix_deliveries_rendered", deliveries.c.rendered_at, postgresql_where=deliveries.c.rendered_at.isnot(None))
# Who a STOP reply or a bounce is about: the addresses and numbers we have messaged.
Index("ix_deliveries_recipient", deliveries.c.recipient, postgresql_where=deliveries.c.recipient.isnot(None))

tenant_settings = Table(
    "tenant_settings",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("config", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Every saved version of a tenant's template, with its author: what changed, when and by whom.
template_versions = Table(
    "template_versions",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("template_id", String(100), primary_key=True),
    Column("locale", String(16), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("body_text", Text, nullable=False),
    Column("body_html", Text),
    Column("sms", Text),
    Column("voice", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("author_sub", String(255)),
    Column("author_name", String(300)),
)

templates = Table(
    "templates",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("template_id", String(100), primary_key=True),
    Column("locale", String(16), primary_key=True),
    Column("subject", Text, nullable=False),
    Column("body_text", Text, nullable=False),
    Column("body_html", Text),
    Column("sms", Text),
    Column("voice", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The version in force (each save is the next one) and who saved it from the workspace (NULL: a key alone).
    Column("version", Integer, nullable=False, server_default="1"),
    Column("author_sub", String(255)),
    Column("author_name", String(300)),
)

# Addresses and numbers that must not be contacted again (opt-out, STOP, hard bounce, complaint).
suppressions = Table(
    "suppressions",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("kind", String(10), primary_key=True),  # email | phone
    Column("address", String(320), primary_key=True),
    Column("reason", String(20), nullable=False),
    Column("customer_id", String(200)),
    Column("detail", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The order of GET /v1/suppressions cursor pages (newest first).
Index(
    "ix_suppressions_tenant_created",
    suppressions.c.tenant_id,
    suppressions.c.created_at,
    suppressions.c.kind,
    suppressions.c.address,
)

collector_tasks = Table(
    "collector_tasks",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", String(100), nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("delivery_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("step_id", String(100), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default="{}"),
    Column("status", String(20), nullable=False, server_default="open"),
    Column("note", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    # Worklist state (service_layer.tasks): who works it, until when it is put aside, how it ended and by whom.
    Column("assignee_sub", String(200)),
    Column("assignee_name", Text),
    Column("snoozed_until", DateTime(timezone=True)),
    Column("outcome", String(20)),
    Column("completed_by", Text),
)
# The order of GET /v1/tasks cursor pages (by status, oldest first).
Index(
    "ix_collector_tasks_tenant_status",
    collector_tasks.c.tenant_id,
    collector_tasks.c.status,
    collector_tasks.c.created_at,
    collector_tasks.c.id,
)

# Provider callbacks already applied (a provider retries its webhooks; each is applied once).
receipts = Table(
    "receipts",
    metadata,
    Column("provider", String(40), primary_key=True),
    Column("provider_event_id", String(300), primary_key=True),
    Column("delivery_id", UUID(as_uuid=True)),
    Column("status", String(40), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSONB, nullable=False, server_default="{}"),
)
# The retention job's work list: receipts still holding the provider's payload.
Index("ix_receipts_payload_held", receipts.c.received_at, postgresql_where=text("payload <> '{}'::jsonb"))
