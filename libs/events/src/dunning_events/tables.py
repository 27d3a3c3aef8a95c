"""The outbox, event archive and inbox tables, added to a service's own metadata so its migrations own them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    func,
    literal,
    or_,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.sql.elements import ColumnElement


def _event_row() -> list[Column[Any]]:
    """An event as the relay hands it to the broker: the same columns in the outbox and its dead letters."""
    return [
        Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("event_type", String(80), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("key", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),  # the record's value: the event's data as JSON
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        # The CloudEvents attributes the relay writes as the record's ce_* headers (dunning_events.codec), stored
        # apart from the payload (the event's data alone, the record's value) so that publishing parses no JSON.
        Column("source", String(80), nullable=False),
        Column("occurred_at", Text, nullable=False),  # as ce_time carries it (RFC 3339): formatted once, on write
        Column("subject", Text, nullable=False),
        Column("schema_version", Integer, nullable=False),
        Column("tenant_id", Text, nullable=False),
        Column("correlation_id", UUID(as_uuid=True), nullable=False),
        Column("causation_id", UUID(as_uuid=True), nullable=True),
    ]


def outbox_table(metadata: MetaData) -> Table:
    """The outbox, with its dead-letter table beside it (outbox_dead_letters_table): a relay needs both."""
    table = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(always=False), primary_key=True),
        *_event_row(),
        # Wall-clock (not business) time: outbox age is an operational signal.
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        # The event is a settlement (EventData.priority): the relay publishes it ahead of the backlog.
        Column("priority", Boolean, nullable=False, server_default=false()),
    )
    # The relay only ever scans unpublished rows; partial indexes keep those scans tiny: the oldest rows (the
    # head), the unpublished settlements (the lane: a handful), and per key its unpublished rows (may a settlement
    # go ahead?).
    unpublished = table.c.published_at.is_(None)
    Index("ix_outbox_unpublished", table.c.id, postgresql_where=unpublished)
    Index("ix_outbox_unpublished_priority", table.c.id, postgresql_where=unpublished & table.c.priority)
    Index("ix_outbox_unpublished_key", table.c.key, table.c.id, postgresql_where=unpublished)
    if "outbox_dead_letters" not in metadata.tables:
        outbox_dead_letters_table(metadata)
    return table


def outbox_dead_letters_table(metadata: MetaData) -> Table:
    """Outbox rows the broker refused for good (too large, invalid): moved here by the relay, with the error, so
    the rows behind them go on. The row is kept whole (payload and headers) to be inspected and replayed."""
    return Table(
        "outbox_dead_letters",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),  # the outbox row's id: its commit order
        *_event_row(),
        Column("priority", Boolean, nullable=False, server_default=false()),
        Column("error", Text, nullable=False),
        # Wall-clock time, as the outbox's: when the change was committed and when the broker refused it.
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("dead_lettered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def event_archive_table(metadata: MetaData) -> Table:
    """Published events kept after the outbox let them go: the relay's prune moves its published rows here (one
    statement, so a row is in exactly one of the two at any moment) and deletes them after EVENT_ARCHIVE_DAYS. The
    events export (dunning_kit.event_export) serves archive and outbox together, keyset by the outbox id, which
    the row keeps. Written only by the prune, never on the relay's publishing path."""
    table = Table(
        "event_archive",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),  # the outbox row's id: its commit order
        *_event_row(),
        Column("priority", Boolean, nullable=False, server_default=false()),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=False),
    )
    Index("ix_event_archive_tenant", table.c.tenant_id, table.c.id)  # the export's walk
    Index("ix_event_archive_published_at", table.c.published_at)  # the prune after EVENT_ARCHIVE_DAYS
    Index("ix_event_archive_key", table.c.key)  # an erasure drops a customer's events
    return table


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer_group", String(200), primary_key=True),
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def supersedes_sql(version: int, applied: ColumnElement[int]) -> ColumnElement[bool]:
    """dunning_events.events.supersedes in SQL, for a projection that keeps the applied version in a column: the
    ledger fact at `version` is newer than the row's (0, a fact from before versions, always applies)."""
    return or_(literal(version) == 0, applied < version)
