"""Transactional outbox: events are written with the state change and published by a relay.

The relay publishes two ways at once. The head: rounds of the oldest unpublished rows in id (commit) order, up
to `batch_size` each. The priority lane: settlements (EventData.priority: payments, credit notes, voids,
reversals), taken ahead of whatever backlog is in front of them, in rounds of their own that never wait for a
head round in flight; so a payment recorded while another tenant's 100,000-row import publishes is on the broker
within one short lane round instead of after the import. Guarantees:

- Per partition key (`tenant_id:customer_id`) the order on the wire is the id order. The lane takes a settlement
  only when every earlier unpublished row of its key is in the same lane round (a payment whose invoice's
  invoice.created is still unpublished waits for the head to publish it); the head takes the oldest rows, and
  leaves out a settlement the lane published meanwhile (it locks its settlements, waiting for a lane round that
  holds them, then sees them published). Rows in flight count as unpublished until marked, and rows are marked
  only after the broker acknowledged them. Keys are never ordered against each other (partitions never were).
- No row is published by both ways in the same pass (the lane skips settlements the head holds).
- At least once: a crash after publishing and before marking re-publishes the round: duplicates are possible,
  loss is not; consumers de-duplicate by event id (inbox).
- One head publisher and one lane publisher per service schema at a time (transaction-level advisory locks whose
  ids are derived from the schema, so services sharing one database publish side by side): with several replicas
  the others stand by, and take over at once (the lanes queue for their lock, so a settlement committed during
  one replica's lane round goes in the next one, whichever replica runs it).
- One bad row never blocks a topic. A row the broker refuses for good (too large for a message, an invalid
  record: `refused_for_good`) is moved to `outbox_dead_letters` with the error, counted
  (dunning_outbox_dead_lettered_total) and logged, and the rows behind it go on, in the head and in the lane
  alike; a row larger than `max_message_bytes` is refused before it is sent. Its customer's later events go on
  too (the order of the others is kept; the dead-lettered one is missing until replayed from the table, see
  README's runbook). A batch the broker refuses is retried one row at a time so only the bad row is set aside.
  Transient broker errors (away, timeouts, not enough replicas) are never dead-lettered: the round is retried.

Published rows stay in the outbox for `retention` (an hour), then the prune, a task of its own beside the
publishers (never on their path), moves them to the `event_archive` table when the service has one
(tables.event_archive_table: a single DELETE ... RETURNING feeding an INSERT, so a row is always in exactly one
of the two) and deletes archived rows older than `archive_retention` (EVENT_ARCHIVE_DAYS); without an archive it
deletes them, as before.

A writer that commits settlements wakes the lane's publisher at once wherever it runs (NOTIFY on the service's
`dunning_outbox_lane_<schema>` channel, delivered on commit); the lane also polls, as the head does. Settlements
carry the `dunning-priority` header, so consumers can take them ahead of their own backlog as well
(dunning_events.lane).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiokafka.errors
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    BrokerResponseError,
    CorruptRecordException,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from dunning_events import metrics
from dunning_events.bulk import raw_connection
from dunning_events.codec import ACTOR_HEADERS, actor_attributes, ce_headers, decode, encode_data, time_text
from dunning_events.envelope import Envelope, EventData
from dunning_events.topics import ALL_TOPICS, partition_key
from dunning_events.tracing import current_trace_headers, to_kafka_headers

log = logging.getLogger("dunning.outbox")

# One relay at a time per service schema publishes, so per-customer order on the wire is the commit order in the
# outbox even with several replicas; the others stand by (and take over at once). The lock's id is derived from
# the way (head or lane) and the service's schema: services sharing one database must not wait for each other.
RELAY_LOCK_KEY = "head"
LANE_LOCK_KEY = "lane"  # the priority lane's publisher: one per schema as well
_TRY_LEAD = text(
    "SELECT pg_try_advisory_xact_lock(hashtextextended('dunning.outbox.' || CAST(:way AS text) || ':' || "
    "current_schema(), 0)), set_config('enable_sort', 'off', true)"
)
_WAIT_LEAD = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('dunning.outbox.' || CAST(:way AS text) || ':' || "
    "current_schema(), 0))"
)
# Kafka's default largest message is 1,048,588 bytes (message.max.bytes / max.message.bytes): stay below it.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
_PARTITIONER = DefaultPartitioner()  # the producer's default: murmur2(key) over all of the topic's partitions
# Marks a settlement on the wire (consumers' priority lane); bulk records carry no extra header.
PRIORITY_HEADER: tuple[str, bytes] = ("dunning-priority", b"1")

# Settlements committed: one channel per service schema (services may share a database).
_LANE_CHANNEL = "dunning_outbox_lane_{schema}"
_NOTIFY_LANE = text("SELECT pg_notify('dunning_outbox_lane_' || current_schema(), '')")

# A row's CloudEvents attributes as the text its ce_* headers carry (codec.ce_headers): PostgreSQL writes the
# UUIDs and the version as text, so the relay only encodes strings.
_ATTRIBUTES = (
    "{o}event_id::text AS event_id, {o}event_type, {o}source, {o}occurred_at, {o}subject, "
    "{o}schema_version::text AS schema_version, {o}tenant_id, {o}correlation_id::text AS correlation_id, "
    "{o}causation_id::text AS causation_id"
)
HEAD_BATCH_SQL = (
    "SELECT id, topic, key, payload, headers::text AS headers, priority, "
    + _ATTRIBUTES.format(o="")
    + " FROM {name} WHERE published_at IS NULL ORDER BY id LIMIT $1"
)
# The head's settlements: wait for a lane round holding any of them; those it published drop out.
_HOLD_SETTLEMENTS = "SELECT id FROM {name} WHERE id = ANY($1::bigint[]) AND published_at IS NULL ORDER BY id FOR UPDATE"
# The lane's round: the oldest unpublished settlements the head does not hold, each `ready` unless an earlier
# unpublished row of its key is outside the round. Both lookups are partial indexes (tables.outbox_table); the key's
# is a correlated LIMIT 1 so that it stays one index probe per settlement whatever the table's statistics say (an
# anti-join may otherwise hash the whole backlog each round).
LANE_BATCH_SQL = """
WITH candidate AS MATERIALIZED (
  SELECT id, key FROM {name} WHERE published_at IS NULL AND priority ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
)
SELECT o.id, o.topic, o.key, o.payload, o.headers::text AS headers, o.priority, {attributes}, (
  SELECT e.id FROM {name} e
  WHERE e.published_at IS NULL AND e.key = c.key AND e.id < c.id AND e.id NOT IN (SELECT id FROM candidate)
  ORDER BY e.key, e.id LIMIT 1
) IS NULL AS ready
FROM candidate c JOIN {name} o ON o.id = c.id
ORDER BY o.id
""".replace("{attributes}", _ATTRIBUTES.format(o="o."))
# Published rows past the outbox's retention move to the event archive in one statement (never copied: a reader
# of both tables sees each row once). Batched by id so one prune never holds a long transaction after a downtime.
_ARCHIVE_COLUMNS = (
    "id, event_id, event_type, topic, key, payload, headers, source, occurred_at, subject, schema_version, tenant_id, "
    "correlation_id, causation_id, priority, created_at, published_at"
)
_MOVE_TO_ARCHIVE = f"""
WITH moved AS (
  DELETE FROM {{name}} WHERE id IN (
    SELECT id FROM {{name}} WHERE published_at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2
  )
  RETURNING {_ARCHIVE_COLUMNS}
)
INSERT INTO {{archive}} ({_ARCHIVE_COLUMNS}) SELECT {_ARCHIVE_COLUMNS} FROM moved
"""
_PRUNE_ARCHIVE = """
DELETE FROM {archive} WHERE id IN (
  SELECT id FROM {archive} WHERE published_at < now() - make_interval(secs => $1) LIMIT $2
)
"""
PRUNE_BATCH = 10_000
PRUNE_INTERVAL_S = 60.0
# Rows the broker refused for good leave the outbox for its dead-letter table, in the round's transaction.
_DEAD_LETTER = """
WITH refused AS (
  SELECT * FROM unnest($1::bigint[], $2::text[]) AS r(id, error)
), moved AS (
  DELETE FROM {name} o USING refused r WHERE o.id = r.id
  RETURNING o.id, o.event_id, o.event_type, o.topic, o.key, o.payload, o.headers, o.source, o.occurred_at, o.subject,
            o.schema_version, o.tenant_id, o.correlation_id, o.causation_id, o.priority, o.created_at, r.error
)
INSERT INTO {dead_letters} (id, event_id, event_type, topic, key, payload, headers, source, occurred_at, subject,
                            schema_version, tenant_id, correlation_id, causation_id, priority, created_at, error)
SELECT id, event_id, event_type, topic, key, payload, headers, source, occurred_at, subject, schema_version, tenant_id,
       correlation_id, causation_id, priority, created_at, error FROM moved
ON CONFLICT (event_id) DO UPDATE SET id = EXCLUDED.id, error = EXCLUDED.error, dead_lettered_at = now()
RETURNING topic
"""


class InvalidRecordError(BrokerResponseError):  # type: ignore[misc]
    """INVALID_RECORD (87): the broker refused a record (e.g. a null key on a compacted topic). aiokafka does not
    know this code and would report it as a retriable UnknownError; registered here so the relay recognises it."""

    errno = 87
    message = "INVALID_RECORD"
    description = "This record has failed the validation on broker and hence will be rejected."


aiokafka.errors.kafka_errors.setdefault(InvalidRecordError.errno, InvalidRecordError)

# What the broker says about one record that no retry can change (everything else is retried, never set aside).
_REFUSED_FOR_GOOD: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
    InvalidRecordError,
)


def refused_for_good(exc: BaseException) -> bool:
    """The broker refused the record itself (too large, invalid): retrying cannot succeed."""
    return isinstance(exc, _REFUSED_FOR_GOOD)


def outbox_row(event: Envelope[Any], trace_headers: Mapping[str, str]) -> dict[str, Any]:
    """The outbox row of an event (tables._event_row): its data as the record's value, its attributes in columns."""
    return {
        "event_id": event.id,
        "event_type": event.type,
        "topic": event.data.topic,
        "key": partition_key(event.tenant_id, event.data.customer_id),
        "payload": encode_data(event),
        # The trace context and, for an event a person's action made, the ce_actor* attributes: headers the relay
        # adds to the record as stored (it builds the other ce_* headers from the columns).
        "headers": {**trace_headers, **actor_attributes(event)} if event.actor is not None else trace_headers,
        "source": event.source,
        "occurred_at": time_text(event.occurred_at),
        "subject": event.subject,
        "schema_version": event.schema_version,
        "tenant_id": event.tenant_id,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "priority": event.data.priority,
    }


def event_of_row(row: Mapping[str, Any]) -> Envelope[EventData]:
    """Decode an outbox row (its columns by name, as stored or as OUTBOX_COLUMNS lists them) as a consumer
    would decode the record the relay makes of it: for tests and tools that look into the outbox."""

    def text(name: str) -> str:
        return str(row[name])

    causation = row["causation_id"]
    headers = ce_headers(
        text("event_id"), text("event_type"), text("source"), text("occurred_at"), text("subject"),
        text("schema_version"), text("tenant_id"), text("correlation_id"), None if causation is None else str(causation),
    )  # fmt: skip
    stored = row.get("headers") or {}
    if isinstance(stored, str | bytes):
        stored = orjson.loads(stored)
    headers.extend((h, str(stored[h]).encode()) for h in ACTOR_HEADERS.values() if h in stored)
    return decode(headers, row["payload"])


class OutboxWriter:
    """Adds events to the outbox inside the caller's transaction; commits are the caller's job."""

    def __init__(
        self,
        table: Table,
        on_commit: Callable[[], None] | None = None,
        on_priority_commit: Callable[[], None] | None = None,
    ) -> None:
        self.table = table
        self._on_commit = on_commit  # the relay's head
        self._on_priority_commit = on_priority_commit  # its priority lane, when settlements were written

    async def add(self, session: AsyncSession | AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
        if not events:
            return
        trace_headers = current_trace_headers()
        rows = [outbox_row(ev, trace_headers) for ev in events]
        await session.execute(self.table.insert(), rows)
        settlements = any(row["priority"] for row in rows)
        if settlements:
            # Delivered on commit to every replica's relay (the lane's publisher may be another replica's).
            await session.execute(_NOTIFY_LANE)
        if isinstance(session, AsyncSession):
            # Wake this process's relay after commit rather than waiting for its next poll.
            after_commit = session.info.setdefault("after_commit", [])
            if self._on_commit is not None:
                after_commit.append(self._on_commit)
            if self._on_priority_commit is not None and settlements:
                after_commit.append(self._on_priority_commit)


@dataclass
class OutboxStats:
    backlog: int
    oldest_age_seconds: float


class OutboxRelay:
    """Publishes unpublished outbox rows (the head and the priority lane, each key in id order), then marks them
    published; the guarantees are the module's."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        table: Table,
        producer: AIOKafkaProducer,
        batch_size: int = 1000,
        poll_interval: float = 0.2,
        retention: timedelta = timedelta(hours=1),
        archive_retention: timedelta = timedelta(days=550),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        topics: Collection[str] | None = None,
    ) -> None:
        self.engine = engine
        # The topics this service publishes to (ServiceRuntime's `produces`; its Kafka user may write only these,
        # deploy/README.md): a row for another topic is set aside like an oversized one, before it is sent.
        self.topics = frozenset(topics) if topics is not None else None
        self.table = table
        self.dead_letters = table.metadata.tables["outbox_dead_letters"]
        self.max_message_bytes = max_message_bytes
        for topic in ALL_TOPICS:  # at 0 from the start, so the alert's increase() sees the first dead letter
            metrics.OUTBOX_DEAD_LETTERED.labels(topic=topic)
        self.producer = producer
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention = retention
        # Where published rows go after `retention` (None: nowhere, they are deleted), and for how long.
        self.archive: Table | None = table.metadata.tables.get("event_archive")
        self.archive_retention = archive_retention
        self._wake = asyncio.Event()
        self._wake_lane = asyncio.Event()
        # Keys whose settlements the last lane round left waiting for their earlier rows (the head wakes the lane
        # when it publishes one of them); otherwise the lane only polls now and then: writers wake it.
        self._blocked_keys: set[str] = set()
        self.lane_poll_interval = max(poll_interval, 1.0)
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        # Fault-injection seam for tests: runs after the broker acknowledged, before rows are marked.
        self.after_publish_hook: Callable[[int], Awaitable[None]] | None = None

    def wake(self) -> None:
        """Rows were committed: publish the head now rather than at the next poll."""
        self._wake.set()

    def wake_lane(self) -> None:
        """Settlements were committed: run a lane round now."""
        self._wake_lane.set()

    async def publish_batch(self) -> int:
        """Publish one round of the head; returns how many rows were published (0 if idle or another relay
        leads). Alone, it publishes everything in id order (the lane only ever takes rows earlier)."""
        async with self._leading(RELAY_LOCK_KEY) as apg:
            if apg is None:
                return 0
            name = self.table.name  # unqualified: the service's schema is on the connection's search_path
            rows = await apg.fetch(HEAD_BATCH_SQL.format(name=name), self.batch_size)
            settlements = [row["id"] for row in rows if row["priority"]]
            if settlements:
                held = {r["id"] for r in await apg.fetch(_HOLD_SETTLEMENTS.format(name=name), settlements)}
                if len(held) < len(settlements):
                    rows = [row for row in rows if not row["priority"] or row["id"] in held]
            published = await self._publish(apg, rows)
        if self._blocked_keys and any(row["key"] in self._blocked_keys for row in rows):
            self.wake_lane()  # settlements waited for these keys' earlier rows, now on the broker
        return published

    async def publish_lane(self) -> int:
        """Publish one round of the priority lane, after any other relay's lane round in progress; returns how
        many settlements were published."""
        async with self._leading(LANE_LOCK_KEY) as apg:
            if apg is None:
                return 0
            candidates = await apg.fetch(LANE_BATCH_SQL.format(name=self.table.name), self.batch_size)
            self._blocked_keys = {row["key"] for row in candidates if not row["ready"]}
            return await self._publish(apg, [row for row in candidates if row["ready"]])

    @asynccontextmanager
    async def _leading(self, lock: str) -> AsyncIterator[Any]:
        """One transaction holding the way's advisory lock for this schema (the raw asyncpg connection), or None if
        another relay of the same service has it."""
        async with self.engine.begin() as conn:
            # Through SQLAlchemy first: that opens the transaction the raw statements then run in (the asyncpg
            # adapter begins lazily, and the lock is a transaction lock).
            if lock == RELAY_LOCK_KEY:
                # No sorting in the head's transaction: its ORDER BY id LIMIT must walk ix_outbox_unpublished in
                # order. With statistics older than a fast-growing backlog (an import) the planner would rather
                # bitmap-scan and sort the whole backlog every round (~40 ms a round at 100,000 rows).
                if not (await conn.execute(_TRY_LEAD, {"way": lock})).scalar():
                    yield None
                    return
            else:
                # The lane waits its turn instead: a settlement committed during another replica's lane round
                # then goes in the round right after it, not at the next poll (`stop` cancels the wait).
                await conn.execute(_WAIT_LEAD, {"way": lock})
            # Straight asyncpg: at tens of thousands of events a second, SQLAlchemy's per-row result objects and
            # the expanding IN (...) of 1,000 ids cost more than the database work itself.
            yield await raw_connection(conn)

    async def _publish(self, apg: Any, rows: Sequence[Any]) -> int:
        """Publish the round's rows and mark them; rows the broker refuses for good go to the dead-letter table.
        Returns how many rows left the outbox's backlog (published or set aside)."""
        if not rows:
            return 0
        refused: dict[int, str] = {}
        sendable = []
        for row in rows:
            size = _record_size(row)
            if self.topics is not None and row["topic"] not in self.topics:
                refused[row["id"]] = (
                    f"TopicAuthorizationFailedError: {row['topic']} is not a topic this service produces "
                    f"({', '.join(sorted(self.topics))}: the `produces` of its ServiceRuntime, which its Kafka user's "
                    "ACLs allow); refused by the relay before sending"
                )
            elif size > self.max_message_bytes:
                refused[row["id"]] = (
                    f"MessageSizeTooLargeError: the record is {size} bytes, more than the {self.max_message_bytes} "
                    "bytes a message may have (OUTBOX_MAX_MESSAGE_BYTES, kept at or below the topic's "
                    "max.message.bytes); refused by the relay before sending"
                )
            else:
                sendable.append(row)
        batches = await self._send_batches(sendable)
        outcomes = await asyncio.gather(*(future for future, _ in batches), return_exceptions=True)
        for (_, batch_rows), outcome in zip(batches, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not refused_for_good(outcome):
                    raise outcome  # transient: nothing is marked, the round is retried
                # Which record of the batch? Send them one by one: only the refused ones are set aside.
                refused.update(await self._isolate(batch_rows))
        if self.after_publish_hook is not None:
            await self.after_publish_hook(len(rows))
        published = [row for row in rows if row["id"] not in refused]
        if published:
            await apg.execute(
                f"UPDATE {self.table.name} SET published_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in published],
            )
        if refused:
            await self._dead_letter(apg, [row for row in rows if row["id"] in refused], refused)
        for topic, count in Counter(row["topic"] for row in published).items():
            metrics.EVENTS_PUBLISHED.labels(topic=topic).inc(count)
        return len(rows)

    async def _isolate(self, rows: Sequence[Any]) -> dict[int, str]:
        """Send a refused batch's rows one at a time, in id order; returns the ones refused for good."""
        refused: dict[int, str] = {}
        for row in rows:
            ((future, _),) = await self._send_batches([row])
            try:
                await future
            except Exception as exc:
                if not refused_for_good(exc):
                    raise
                refused[row["id"]] = _describe(exc)
        return refused

    async def _dead_letter(self, apg: Any, rows: Sequence[Any], refused: dict[int, str]) -> None:
        ids = [row["id"] for row in rows]
        moved = await apg.fetch(
            _DEAD_LETTER.format(name=self.table.name, dead_letters=self.dead_letters.name),
            ids,
            [refused[i] for i in ids],
        )
        for topic, count in Counter(r["topic"] for r in moved).items():
            metrics.OUTBOX_DEAD_LETTERED.labels(topic=topic).inc(count)
        for row in rows:
            log.error(
                "outbox relay: the broker refused %s %s (key %s, %d bytes) for good: moved to %s, the rows behind "
                "it go on: %s",
                row["topic"],
                row["id"],
                row["key"],
                _record_size(row),
                self.dead_letters.name,
                refused[row["id"]],
            )

    async def _send_batches(self, rows: Sequence[Any]) -> list[tuple[asyncio.Future[Any], list[Any]]]:
        """Hand the rows to the producer as one record batch per partition, in id order within each; returns each
        batch's future with its rows.

        The producer's per-record send() costs more Python than the rest of the relay together; building the
        partitions' batches here keeps the same partition for a key (the producer's own murmur2 partitioner
        over the topic's partitions) and the same order, so per-customer order on the wire is unchanged.
        """
        open_batches: dict[tuple[str, int], tuple[Any, list[Any]]] = {}
        sent: list[tuple[asyncio.Future[Any], list[Any]]] = []
        partitions: dict[str, list[int]] = {}
        partition_of: dict[tuple[str, str], int] = {}
        for row in rows:
            topic, key = row["topic"], row["key"]
            key_bytes = key.encode()
            partition = partition_of.get((topic, key))
            if partition is None:  # a customer's events repeat within a batch: hash its key once
                if topic not in partitions:
                    partitions[topic] = sorted(await self.producer.partitions_for(topic))
                partition = _PARTITIONER(key_bytes, partitions[topic], partitions[topic])
                partition_of[(topic, key)] = partition
            entry = open_batches.get((topic, partition))
            if entry is None:
                entry = open_batches[(topic, partition)] = (self.producer.create_batch(), [])
            batch, batch_rows = entry
            headers = _record_headers(row)
            if row["priority"]:
                headers.append(PRIORITY_HEADER)
            if batch.append(key=key_bytes, value=row["payload"], timestamp=None, headers=headers) is None:
                batch.close()  # full: send it and start the partition's next batch
                sent.append((await self.producer.send_batch(batch, topic, partition=partition), batch_rows))
                batch, batch_rows = open_batches[(topic, partition)] = (self.producer.create_batch(), [])
                # A batch always takes its first record, whatever its size (the broker judges that).
                batch.append(key=key_bytes, value=row["payload"], timestamp=None, headers=headers)
            batch_rows.append(row)
        for (topic, partition), (batch, batch_rows) in open_batches.items():
            batch.close()
            sent.append((await self.producer.send_batch(batch, topic, partition=partition), batch_rows))
        return sent

    async def drain(self, timeout: float = 10.0) -> None:
        """Publish until the outbox is empty (used on shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if await self.publish_batch() == 0 and (await self.stats()).backlog == 0:
                return
        log.warning("outbox not empty after %.1fs drain; rows stay for the next start", timeout)

    async def run(self) -> None:
        """Publish the head until stopped (the lane runs alongside: `start`)."""
        await self._loop(self.publish_batch, self._wake)

    async def run_lane(self) -> None:
        await self._loop(self.publish_lane, self._wake_lane, poll_interval=self.lane_poll_interval)

    async def run_prune(self) -> None:
        """Prune published rows now and then (`prune_published`) until stopped; a failure is retried next time."""
        while not self._stopping:
            try:
                await self.prune_published()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay: pruning published rows failed (%s); retrying later", exc)
            await asyncio.sleep(PRUNE_INTERVAL_S)

    async def _loop(
        self,
        publish: Callable[[], Awaitable[int]],
        wake: asyncio.Event,
        poll_interval: float | None = None,
    ) -> None:
        backoff = self.poll_interval
        while not self._stopping:
            wake.clear()  # before the round: a wake while it runs means another round, not a lost wake
            try:
                published = await publish()
                backoff = self.poll_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database or broker away: keep the rows, retry later
                log.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
                published = 0
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if published == 0:
                try:
                    await asyncio.wait_for(wake.wait(), timeout=poll_interval or self.poll_interval)
                except TimeoutError:
                    pass

    async def listen(self) -> None:
        """Wake the lane whenever any replica commits settlements (OutboxWriter's NOTIFY), on a connection of its
        own; the lane's poll covers the moments it is reconnecting."""
        backoff = self.poll_interval
        while not self._stopping:
            try:
                async with self.engine.connect() as conn:
                    apg = await raw_connection(conn, in_transaction=False)  # LISTEN: between transactions
                    channel = _LANE_CHANNEL.format(schema=await apg.fetchval("SELECT current_schema()"))
                    closed = asyncio.Event()
                    apg.add_termination_listener(lambda _, closed=closed: closed.set())
                    await apg.add_listener(channel, self._notified)
                    backoff = self.poll_interval
                    try:
                        await closed.wait()  # until the connection is lost (or `stop` cancels this)
                    finally:
                        if not apg.is_closed():
                            await apg.remove_listener(channel, self._notified)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay: settlements' notifications unavailable (%s); polling meanwhile", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _notified(self, *_: Any) -> None:
        self._wake_lane.set()

    def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self.run(), name="outbox-relay"),
            asyncio.create_task(self.run_lane(), name="outbox-relay-lane"),
            asyncio.create_task(self.listen(), name="outbox-relay-listen"),
            asyncio.create_task(self.run_prune(), name="outbox-relay-prune"),
        ]

    async def stop(self, drain_timeout: float = 10.0) -> None:
        self._stopping = True
        self.wake()
        self.wake_lane()
        for task in self._tasks:
            if task.get_name() != "outbox-relay":
                task.cancel()  # the lane may wait for its lock, the listener only waits; the drain below publishes
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            await self.drain(drain_timeout)
        except Exception as exc:
            log.warning("outbox drain on stop failed: %s", exc)

    async def stats(self) -> OutboxStats:
        t = self.table
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.extract("epoch", func.now() - func.min(t.c.created_at)), 0),
                    ).where(t.c.published_at.is_(None))
                )
            ).one()
        return OutboxStats(backlog=int(row[0]), oldest_age_seconds=float(row[1]))

    async def prune_published(self, retention: timedelta | None = None) -> tuple[int, int]:
        """Let go of the rows published longer than `retention` ago (default: the relay's): moved to the event
        archive (or deleted when the service keeps none); then drop archived rows older than the archive's
        retention. Returns (rows moved or deleted, archived rows dropped)."""
        keep = (self.retention if retention is None else retention).total_seconds()
        if self.archive is None:
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    delete(self.table).where(
                        self.table.c.published_at < func.now() - text(f"interval '{int(keep)} seconds'")
                    )
                )
            return int(getattr(result, "rowcount", 0) or 0), 0
        moved = await self._in_batches(_MOVE_TO_ARCHIVE, keep)
        dropped = await self._in_batches(_PRUNE_ARCHIVE, self.archive_retention.total_seconds())
        return moved, dropped

    async def _in_batches(self, sql: str, older_than_s: float) -> int:
        """Run a prune statement batch by batch (a transaction each) until a batch comes back short."""
        assert self.archive is not None
        statement = sql.format(name=self.table.name, archive=self.archive.name)
        total = 0
        while True:
            async with self.engine.begin() as conn:
                apg = await raw_connection(conn)
                status = await apg.execute(statement, float(older_than_s), PRUNE_BATCH)
            count = int(status.rsplit(" ", 1)[-1])  # "INSERT 0 n" / "DELETE n"
            total += count
            if count < PRUNE_BATCH or self._stopping:
                return total


def _record_size(row: Any) -> int:
    """The record's size on the wire, near enough (key, value, headers as stored; the batch framing is small)."""
    attributes = len(row["source"]) + len(row["subject"]) + len(row["tenant_id"]) + len(row["event_type"])
    return (
        len(row["payload"]) + len(row["key"]) + len(row["headers"] or "") + attributes + _CE_HEADERS_SIZE
        + (16 if row["priority"] else 0)
    )  # fmt: skip


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:4000]


# The ce_* headers' names, the fixed values (specversion, content type), three UUIDs, a time and a version.
_CE_HEADERS_SIZE = 300


def _record_headers(row: Any) -> list[tuple[str, bytes]]:
    """The record's headers: its CloudEvents attributes (from the row's columns), then the trace context."""
    headers = ce_headers(
        row["event_id"], row["event_type"], row["source"], row["occurred_at"], row["subject"],
        row["schema_version"], row["tenant_id"], row["correlation_id"], row["causation_id"],
    )  # fmt: skip
    stored = row["headers"]
    if stored and stored != "{}":  # most rows: nothing was being traced, skip the JSON parse
        headers.extend(to_kafka_headers(orjson.loads(stored)))
    return headers


def _install_commit_hooks() -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    @event.listens_for(Session, "after_commit")
    def _after_commit(session: Session) -> None:
        for callback in session.info.pop("after_commit", []):
            callback()

    @event.listens_for(Session, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop("after_commit", None)


_install_commit_hooks()
