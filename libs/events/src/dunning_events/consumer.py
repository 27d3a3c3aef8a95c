"""The batch consumer loop: getmany -> one DB transaction per batch -> commit offsets after the DB commit.

Poison events go to the group's dead-letter topic with the error and the loop goes on. Transient
failures (database or broker away) are retried from the batch's first offset, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from opentelemetry.trace import Span
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_events import metrics
from dunning_events.codec import PoisonEvent, decode
from dunning_events.envelope import Envelope, EventData
from dunning_events.inbox import Inbox
from dunning_events.kafka_security import PLAINTEXT, KafkaSecurity
from dunning_events.topics import dead_letter_topic
from dunning_events.tracing import consume_span

log = logging.getLogger("dunning.consumer")

# What a dead letter adds to the headers the record had on its source topic (those stay, the CloudEvents ones too,
# so `python -m dunning_kit.dlq replay` republishes the record as it was). Documented in the AsyncAPI document.
DLQ_ERROR = "dlq-error"
DLQ_CONSUMER_GROUP = "dlq-consumer-group"
DLQ_SOURCE_TOPIC = "dlq-source-topic"
DLQ_SOURCE_PARTITION = "dlq-source-partition"
DLQ_SOURCE_OFFSET = "dlq-source-offset"
DLQ_HEADERS: dict[str, str] = {
    DLQ_ERROR: "Why the record can never be applied: the header or field and the reason (PoisonEvent), or the "
    "handler's error (first 4,000 bytes)",
    DLQ_CONSUMER_GROUP: "The consumer group that gave up on it",
    DLQ_SOURCE_TOPIC: "The topic it was read from (where a replay republishes it)",
    DLQ_SOURCE_PARTITION: "Its partition there",
    DLQ_SOURCE_OFFSET: "Its offset there",
}


@dataclass
class ConsumedEvent:
    """A decoded event with where it came from; `traced()` runs code inside its consumer span."""

    envelope: Envelope[EventData]
    topic: str
    partition: int
    offset: int
    headers: Sequence[tuple[str, bytes]] = field(default_factory=list)
    # Applied by the group's priority lane ahead of the group's order (dunning_events.lane): records before its
    # offset may not be applied yet, so a handler must not take its offset as a position reached.
    ahead: bool = False

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def data(self) -> Any:
        return self.envelope.data

    @contextmanager
    def traced(self, group: str) -> Iterator[Span]:
        ev = self.envelope
        with consume_span(
            f"{group} process {ev.type}",
            self.headers,
            {
                "messaging.system": "kafka",
                "messaging.destination.name": self.topic,
                "messaging.consumer.group.name": group,
                "dunning.event_id": str(ev.id),
                "dunning.tenant_id": ev.tenant_id,
                "dunning.subject": ev.subject,
            },
        ) as s:
            yield s


# A batch handler applies new (not yet seen) events inside the given session's transaction.
BatchHandler = Callable[[AsyncSession, list[ConsumedEvent]], Awaitable[None]]
EventHandlerFn = Callable[[AsyncSession, ConsumedEvent], Awaitable[None]]


def one_by_one(group: str, handler: EventHandlerFn) -> BatchHandler:
    """Adapt a per-event handler: each event runs inside its own consumer span, one transaction for all."""

    async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        for ev in events:
            with ev.traced(group):
                await handler(session, ev)

    return apply


def is_transient(exc: BaseException) -> bool:
    """Errors that say 'try again later' rather than 'this event is bad'."""
    if isinstance(exc, (OperationalError, InterfaceError, OSError, ConnectionError, TimeoutError, KafkaError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        # serialization failure, deadlock, lock_timeout, admin shutdown, cannot connect now. A statement_timeout
        # (57014) is not here: the batch is then applied one event at a time, and an event that alone runs past
        # the timeout is poison.
        return code in {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "08000", "08003", "08006"}
    return False


class BatchConsumer:
    def __init__(
        self,
        *,
        group: str,
        topics: Sequence[str],
        bootstrap_servers: str,
        session_factory: async_sessionmaker[AsyncSession],
        inbox: Inbox,
        handler: BatchHandler,
        producer: AIOKafkaProducer,
        max_records: int = 1000,
        poll_timeout_ms: int = 200,
        client_id: str | None = None,
        security: KafkaSecurity = PLAINTEXT,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.group = group
        self.topics = list(topics)
        self.bootstrap_servers = bootstrap_servers
        self.security = security
        self.session_factory = session_factory
        self.inbox = inbox
        self.handler = handler
        self.producer = producer
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        # Set by the group's priority lane: awaited before each batch is applied, so settlements the lane has
        # found get the event loop and the database first instead of waiting behind a batch of bulk work.
        self.give_way: Callable[[], Awaitable[None]] | None = None
        self.client_id = client_id or group
        self.dead_letter_topic = dead_letter_topic(group)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._committed: dict[TopicPartition, int] = {}
        # `connected`: joined the group and owns partitions (lag is known). `healthy`: the broker answers this
        # consumer - what readiness asks. They differ while the consumer joins its group: after a SIGKILL the
        # broker first waits out the dead member's session (Tansu: up to twice the session timeout, ~18 s),
        # which is the group's business, not a reason to take the process out of service.
        self.connected = False
        self.healthy = False
        # Fault-injection seam for tests: runs after the DB commit, before offsets are committed.
        self.after_db_commit_hook: Callable[[], Awaitable[None]] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._stopping = False
        self.healthy = True  # until a call to the broker fails
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group}")

    async def stop(self) -> None:
        """Stop consuming; the batch in hand is finished and its offsets committed first."""
        self._stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=30)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _connect(self) -> AIOKafkaConsumer:
        backoff = 0.2
        said = ""
        while not self._stopping:
            consumer: AIOKafkaConsumer | None = None
            try:
                consumer = AIOKafkaConsumer(
                    *self.topics,
                    **self.security.client_kwargs(),
                    bootstrap_servers=self.bootstrap_servers,
                    group_id=self.group,
                    client_id=self.client_id,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    max_poll_records=self.max_records,
                    fetch_max_wait_ms=self.poll_timeout_ms,
                    session_timeout_ms=self.session_timeout_ms,
                    heartbeat_interval_ms=min(1_000, self.session_timeout_ms // 10),
                    metadata_max_age_ms=5_000,
                )
                await consumer.start()
                self.connected = self.healthy = True
                return consumer
            except Exception as exc:
                self.healthy = False
                if consumer is not None:
                    await consumer.stop()
                if str(exc) != said:  # once per cause, not once per retry
                    said = str(exc)
                    log.warning("consumer %s cannot reach the broker (%s); retrying", self.group, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        raise asyncio.CancelledError

    async def _run(self) -> None:
        try:
            self._consumer = await self._connect()
        except asyncio.CancelledError:
            return
        consumer = self._consumer
        backoff = 0.2
        try:
            while not self._stopping:
                try:
                    batches = await consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
                    self.connected = self.healthy = True
                    if batches:
                        await self._process(consumer, batches)
                    backoff = 0.2
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not is_transient(exc):
                        log.exception("consumer %s: unexpected error; retrying the batch", self.group)
                    else:
                        log.warning("consumer %s: %s; retrying the batch in %.1fs", self.group, exc, backoff)
                    self.connected = self.healthy = not isinstance(exc, KafkaError)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            self.connected = self.healthy = False
            await consumer.stop()
            self._consumer = None

    # ------------------------------------------------------------------ one batch

    async def _process(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        try:
            await self._apply_and_commit(consumer, batches)
        except BaseException:
            # Whatever failed, read the whole batch again on the next poll; the inbox skips what was applied.
            for tp, records in batches.items():
                consumer.seek(tp, records[0].offset)
            raise

    async def _apply_and_commit(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        started = time.perf_counter()
        events: list[ConsumedEvent] = []
        poison: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        for records in batches.values():
            for record in records:
                try:
                    env = decode(record.headers, record.value)
                except PoisonEvent as exc:
                    poison.append((record, str(exc)))
                    continue
                events.append(
                    ConsumedEvent(env, record.topic, record.partition, record.offset, list(record.headers or []))
                )
        if self.give_way is not None:
            await self.give_way()
        try:
            await self.apply(events)
        except Exception as exc:
            if is_transient(exc):
                raise
            # Isolate the poison: apply one at a time, dead-letter the ones that fail.
            log.warning("consumer %s: batch failed (%s); isolating events", self.group, exc)
            for ev in events:
                try:
                    await self.apply([ev])
                except Exception as one_exc:
                    if is_transient(one_exc):
                        raise
                    poison.append((_record_of(batches, ev), f"{type(one_exc).__name__}: {one_exc}"))
        for record, error in poison:
            await self._dead_letter(record, error)
        if self.after_db_commit_hook is not None:
            await self.after_db_commit_hook()
        offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in batches.items()}
        try:
            await consumer.commit(offsets)
            self._committed.update({tp: o.offset for tp, o in offsets.items()})
        except KafkaError as exc:
            # Effects are committed; a redelivery is harmless (inbox).
            log.warning("consumer %s: offset commit failed (%s); events may be redelivered", self.group, exc)
        metrics.BATCH_SECONDS.labels(group=self.group).observe(time.perf_counter() - started)
        applied = metrics.EVENTS_CONSUMED.labels(group=self.group, topic=self.topics[0], outcome="applied")
        for ev in events:
            if ev.topic != self.topics[0]:
                applied = metrics.EVENTS_CONSUMED.labels(group=self.group, topic=ev.topic, outcome="applied")
            applied.inc()
            _log_applied(self.group, ev)

    async def apply(self, events: list[ConsumedEvent]) -> None:
        """Apply the events not in the inbox yet, in one transaction (also the priority lane's way in)."""
        if not events:
            return
        async with self.session_factory() as session, session.begin():
            fresh = await self.inbox.claim(session, (ev.envelope.id for ev in events))
            new_events = [ev for ev in events if ev.envelope.id in fresh]
            if new_events:
                await self.handler(session, new_events)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        log.error(
            "consumer %s: dead-lettering %s[%d]@%d: %s",
            self.group,
            record.topic,
            record.partition,
            record.offset,
            error,
        )
        # The record as it came (its ce_* headers, trace context and priority mark kept), plus DLQ_HEADERS.
        headers = list(record.headers or []) + [
            (DLQ_ERROR, error.encode()[:4000]),
            (DLQ_CONSUMER_GROUP, self.group.encode()),
            (DLQ_SOURCE_TOPIC, record.topic.encode()),
            (DLQ_SOURCE_PARTITION, str(record.partition).encode()),
            (DLQ_SOURCE_OFFSET, str(record.offset).encode()),
        ]
        await self.producer.send_and_wait(self.dead_letter_topic, value=record.value, key=record.key, headers=headers)
        metrics.DEAD_LETTERED.labels(group=self.group).inc()
        metrics.EVENTS_CONSUMED.labels(group=self.group, topic=record.topic, outcome="dead_lettered").inc()

    # ------------------------------------------------------------------ observation

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member holds now (none while not connected)."""
        consumer = self._consumer
        if consumer is None or not self.connected:
            return frozenset()
        return frozenset(consumer.assignment())

    @property
    def committed_offsets(self) -> dict[TopicPartition, int]:
        """The group's committed offset per partition as this member last saw it: every record before it is
        applied (a stale value is lower, never higher)."""
        return self._committed

    async def committed_offset(self, tp: TopicPartition) -> int:
        if tp not in self._committed and self._consumer is not None:
            self._committed[tp] = await self._consumer.committed(tp) or 0
        return self._committed.get(tp, 0)

    async def lag(self) -> int | None:
        """Records on the broker not yet applied and committed; None while not connected/assigned."""
        consumer = self._consumer
        if consumer is None or not self.connected:
            return None
        assignment = consumer.assignment()
        if not assignment:
            return None
        try:
            ends = await consumer.end_offsets(list(assignment))
        except Exception:
            return None
        total = 0
        per_topic: dict[str, int] = {}
        for tp, end in ends.items():
            committed = self._committed.get(tp)
            if committed is None:
                committed = await consumer.committed(tp) or 0
                self._committed[tp] = committed
            behind = max(0, end - committed)
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + behind
            total += behind
        for topic, value in per_topic.items():
            metrics.CONSUMER_LAG.labels(group=self.group, topic=topic).set(value)
        return total

    async def group_lag(self, topic: str) -> int | None:
        """Records of `topic` on the broker that the whole group (every replica, every partition) has not
        applied yet; None when it cannot be told (not connected, topic metadata unknown, broker error).

        `lag()` covers only this member's partitions: a read served by one replica must not call an event
        "never arrived" while another replica still holds it. Committed offsets move only after the database
        commit, so 0 means every event published before this call is applied and visible.
        """
        consumer = self._consumer
        if consumer is None or not self.connected or topic not in self.topics:
            return None
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return None
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        try:
            ends = await consumer.end_offsets(tps)
            mine = consumer.assignment()
            # Another member's partitions: the group's committed offsets, from the broker.
            others = [tp for tp in tps if tp not in mine or tp not in self._committed]
            committed = {tp: self._committed[tp] for tp in tps if tp not in others}
            never: list[TopicPartition] = []
            for tp in others:
                offset = await consumer.committed(tp)
                if offset is None:
                    never.append(tp)
                else:
                    committed[tp] = offset
            if never:
                # No commit yet: the group starts at the earliest record still kept (auto_offset_reset).
                committed.update(await consumer.beginning_offsets(never))
        except Exception:
            return None
        return sum(max(0, int(ends[tp]) - int(committed[tp])) for tp in tps)


def _log_applied(group: str, ev: ConsumedEvent) -> None:
    """One structured line per applied event: tenant, subject, event id and the trace it belongs to."""
    if not log.isEnabledFor(logging.INFO):
        return
    env = ev.envelope
    traceparent = next((v for k, v in ev.headers if k == "traceparent"), b"").decode(errors="replace")
    trace_id = traceparent.split("-")[1] if traceparent.count("-") >= 3 else None
    log.info(
        "%s applied %s",
        group,
        env.type,
        extra={
            "tenant_id": env.tenant_id,
            "subject": env.subject,
            "event_id": str(env.id),
            "event_type": env.type,
            "trace_id": trace_id,
            "consumer_group": group,
        },
    )


def _record_of(
    batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], ev: ConsumedEvent
) -> ConsumerRecord[bytes, bytes]:
    for record in batches[TopicPartition(ev.topic, ev.partition)]:
        if record.offset == ev.offset:
            return record
    raise LookupError(f"record {ev.topic}[{ev.partition}]@{ev.offset} not in batch")
