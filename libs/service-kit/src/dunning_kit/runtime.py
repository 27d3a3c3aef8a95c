"""One service's moving parts and their lifecycle: database, producer, outbox relay, consumers, timers, and a typed
slot for the service's own objects (`objects`, a dataclass the service defines in its service_layer/).

Start order: database (timers) -> broker (producer, relay, consumers). Stop order (SIGTERM): the service's
`on_stop(..., before_parts=True)` callbacks (its own work winds down while the relay still drains the outbox) ->
stop consuming (the batch in hand finishes and commits its offsets) -> stop timers -> flush the outbox -> close ->
the service's other `on_stop` callbacks (its clients close once nothing can call them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic

from aiokafka import AIOKafkaProducer
from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typing_extensions import TypeVar

from dunning_events import metrics
from dunning_events.broker_probe import probe_broker
from dunning_events.consumer import BatchConsumer, BatchHandler
from dunning_events.events import PRIORITY_TOPICS
from dunning_events.inbox import Inbox, prune_inbox
from dunning_events.kafka import ensure_topics, make_producer
from dunning_events.kafka_security import BOOTSTRAP_SETTING, PLAINTEXT, KafkaAccessError
from dunning_events.lane import PriorityLane
from dunning_events.outbox import OutboxRelay, OutboxWriter
from dunning_events.tables import event_archive_table, inbox_table, outbox_table
from dunning_events.topics import ALL_TOPICS, dead_letter_topic
from dunning_kit.audit_log import TABLE as AUDIT_TABLE
from dunning_kit.audit_log import AuditLog
from dunning_kit.clock import Clock
from dunning_kit.db import make_engine, make_sessions
from dunning_kit.db_probe import PROBE_TIMEOUT_S, database_problem, probe_database
from dunning_kit.idempotency import TABLE as IDEMPOTENCY_TABLE
from dunning_kit.idempotency import idempotency_table, prune_keys
from dunning_kit.settings import ServiceSettings
from dunning_kit.timers import DueStats, FireDue, TimerLoop

log = logging.getLogger("dunning.runtime")

# Defaults (PEP 696): code that serves any service (the kit) writes plain `ServiceRuntime`.
SettingsT = TypeVar("SettingsT", bound=ServiceSettings, default=Any)  # the service's Settings class
ObjectsT = TypeVar("ObjectsT", default=Any)  # the service's own objects (a dataclass in its service_layer/)

StopCallback = Callable[[], Awaitable[None]]

HOUSEKEEPING_INTERVAL_S = 600.0  # inbox pruning: rare, and cheap when there is nothing to prune


def plumbing_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add the outbox (with its dead letters and the event archive its prune fills), inbox and idempotency-key
    tables to a service's metadata (its migrations create them); returns the outbox and the inbox."""
    idempotency_table(metadata)
    outbox = outbox_table(metadata)
    event_archive_table(metadata)
    return outbox, inbox_table(metadata)


@dataclass
class QuietReport:
    service: str
    outbox_backlog: int
    consumer_lag: dict[str, int | None] = field(default_factory=dict)
    timers_due: dict[str, int] = field(default_factory=dict)

    @property
    def quiet(self) -> bool:
        return (
            self.outbox_backlog == 0
            and all(v == 0 for v in self.consumer_lag.values())
            and all(v == 0 for v in self.timers_due.values())
        )


class ServiceRuntime(Generic[SettingsT, ObjectsT]):
    """`ServiceRuntime[Settings, EngineObjects]`: `settings` is the service's Settings, `objects` its own objects."""

    def __init__(
        self,
        *,
        name: str,
        settings: SettingsT,
        clock: Clock,
        metadata: MetaData,
        schema: str,
        produces: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        # The event topics this service publishes (its outbox relay refuses any other): with the consumer groups
        # below, what its Kafka user may do (dunning_kit.kafka_access derives the Strimzi ACLs from both).
        self.produces: tuple[str, ...] = tuple(produces or ())
        self.settings = settings
        self.clock = clock
        self.schema = settings.database_schema or schema
        self.engine: AsyncEngine = make_engine(
            settings.database_url,
            self.schema,
            settings.db_pool_size,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            lock_timeout_ms=settings.db_lock_timeout_ms,
        )
        self.sessions: async_sessionmaker[AsyncSession] = make_sessions(self.engine)
        self.outbox_table = metadata.tables["outbox"]
        self.inbox_table = metadata.tables["inbox"]
        self.idempotency_table: Table | None = metadata.tables.get(IDEMPOTENCY_TABLE)
        # Who changed what on behalf of a person: kept by a service whose metadata has the table.
        audit = metadata.tables.get(AUDIT_TABLE)
        self.audit_log: AuditLog | None = AuditLog(name, self.engine, audit) if audit is not None else None
        self.kafka_security = settings.kafka_security()
        # Why the broker cannot be used right now (None once it can): readiness is false meanwhile, and the
        # cause was logged once, naming the setting at fault.
        self.broker_problem: str | None = None
        self.broker_attempts = 0
        # The same for PostgreSQL, until the first connection works.
        self.database_problem: str | None = None
        self.database_attempts = 0
        self.producer: AIOKafkaProducer = self._new_producer()
        self.relay = OutboxRelay(
            engine=self.engine,
            table=self.outbox_table,
            producer=self.producer,
            batch_size=settings.outbox_batch_size,
            poll_interval=settings.outbox_poll_interval,
            max_message_bytes=settings.outbox_max_message_bytes,
            archive_retention=timedelta(days=settings.event_archive_days),
            topics=self.produces or None,
        )
        self.outbox = OutboxWriter(
            self.outbox_table, on_commit=self.relay.wake, on_priority_commit=self.relay.wake_lane
        )
        self.consumers: list[BatchConsumer] = []
        self.lanes: list[PriorityLane] = []
        self.timers: list[TimerLoop] = []
        self.readiness_checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        self.background: list[asyncio.Task[Any]] = []
        self._objects: ObjectsT | None = None
        self._stop_first: list[StopCallback] = []
        self._stop_last: list[StopCallback] = []
        self._producer_ready = asyncio.Event()
        self._started = False
        self._starter: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ wiring (composition root)

    @property
    def objects(self) -> ObjectsT:
        """The service's own objects (its policy book, its dispatcher, ...), set once by its bootstrap."""
        if self._objects is None:
            raise RuntimeError(f"{self.name}: the service's objects were not set by its bootstrap")
        return self._objects

    @objects.setter
    def objects(self, objects: ObjectsT) -> None:
        self._objects = objects

    def on_stop(self, callback: StopCallback, *, before_parts: bool = False) -> None:
        """Run `callback` when the service stops: after the runtime's parts have stopped (close the service's
        clients), or with `before_parts` first, while consumers, timers and the outbox relay still run (let the
        service's own work finish and reach the outbox). Callbacks of one kind run in the order added."""
        (self._stop_first if before_parts else self._stop_last).append(callback)

    def add_consumer(self, group: str, topics: Sequence[str], handler: BatchHandler) -> BatchConsumer:
        consumer = BatchConsumer(
            group=group,
            topics=topics,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            session_factory=self.sessions,
            inbox=Inbox(self.inbox_table, group),
            handler=handler,
            producer=self.producer,
            max_records=self.settings.consumer_max_records,
            client_id=f"{self.name}-{group}",
            security=self.kafka_security,
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
        )
        self.consumers.append(consumer)
        if PRIORITY_TOPICS.intersection(topics):
            # Settlements are applied ahead of this group's backlog (another tenant's import), in key order.
            self.lanes.append(PriorityLane(consumer))
        return consumer

    def _new_producer(self) -> AIOKafkaProducer:
        try:
            producer = make_producer(self.settings.kafka_bootstrap_servers, self.name, self.kafka_security)
            self._producer_stale = False
        except KafkaAccessError:
            # A file is missing (a Secret not mounted yet): the start loop reports it, and builds the real
            # producer once the probe passes. This one is never started.
            producer = make_producer(self.settings.kafka_bootstrap_servers, self.name, PLAINTEXT)
            self._producer_stale = True
        return producer

    def _replace_producer(self) -> None:
        self.producer = self._new_producer()
        self.relay.producer = self.producer
        for c in self.consumers:
            c.producer = self.producer

    def add_timer(
        self, name: str, fire_due: FireDue, due_stats: DueStats, *, workers: int = 1, poll_interval: float | None = None
    ) -> list[TimerLoop]:
        """A durable-timer loop; with `workers` > 1 that many loops (`name`, `name-1`, ...) overlap one batch's
        database round trips with another's work, kept on disjoint rows by their claims (SKIP LOCKED), exactly
        as replicas are. `poll_interval`: how long an idle loop waits at most (default TIMER_POLL_INTERVAL; a
        simulated clock wakes it whenever it moves)."""
        interval = poll_interval if poll_interval is not None else self.settings.timer_poll_interval
        loops = [
            TimerLoop(name if n == 0 else f"{name}-{n}", self.clock, fire_due, due_stats, interval)
            for n in range(max(1, workers))
        ]
        self.timers.extend(loops)
        return loops

    def add_readiness_check(self, name: str, check: Callable[[], Awaitable[bool]]) -> None:
        """A service's own condition for serving (its stored secrets open, ...): shown in /readyz by name."""
        self.readiness_checks[name] = check

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Returns at once; the parts start in the background: the timers once the database answers, the
        broker-facing parts once the broker can be used too."""
        self._started = True
        self._starter = asyncio.create_task(self._start_when_usable(), name=f"{self.name}-start")

    async def _start_when_usable(self) -> None:
        await self._wait_for_database()
        for timer in self.timers:
            timer.start()
        await self._start_when_broker_reachable()

    async def _wait_for_database(self) -> None:
        """Retry one connection until it works; the cause is logged once (and again only when it changes),
        naming DATABASE_URL without its password, while readiness says `database: false`."""
        backoff = 0.2
        while True:
            self.database_attempts += 1
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await probe_database(self.engine)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                problem, level = database_problem(exc, self.settings.database_url)
                if problem != self.database_problem:
                    self.database_problem = problem
                    log.log(level, "%s: cannot use PostgreSQL: %s; not ready, retrying until this is fixed",
                            self.name, problem)  # fmt: skip
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        if self.database_problem is not None:
            log.info("%s: PostgreSQL usable again", self.name)
            self.database_problem = None

    async def _start_when_broker_reachable(self) -> None:
        """Probe the broker as a client (TLS, SASL, metadata), create the topics, start the producer; retry until
        that works. A failure's cause is logged once, when it first appears or changes, naming the setting at
        fault: a missing Secret or a refused certificate is one line and a false readiness, not a crash loop and
        not a stack trace per retry."""
        backoff = 0.2
        while True:
            self.broker_attempts += 1
            try:
                await probe_broker(self.settings.kafka_bootstrap_servers, self.kafka_security)
                if self._producer_stale:
                    await self.producer.stop()
                    self._replace_producer()
                if self.settings.kafka_create_topics:
                    await ensure_topics(
                        self.settings.kafka_bootstrap_servers,
                        [*ALL_TOPICS, *(dead_letter_topic(c.group) for c in self.consumers)],
                        partitions=self.settings.kafka_topic_partitions,
                        attempts=1,
                        security=self.kafka_security,
                    )
                await self.producer.start()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                problem = str(exc) if isinstance(exc, KafkaAccessError) else f"{type(exc).__name__}: {exc}"
                if problem != self.broker_problem:
                    self.broker_problem = problem
                    # Not reachable (yet): often a broker still starting. Anything else needs someone to act.
                    level = logging.WARNING if getattr(exc, "setting", None) == BOOTSTRAP_SETTING else logging.ERROR
                    log.log(level, "%s: cannot use Kafka: %s; not ready, retrying until this is fixed",
                            self.name, problem)  # fmt: skip
                await self.producer.stop()
                self._replace_producer()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        if self.broker_problem is not None:
            log.info("%s: Kafka usable again (%s)", self.name, self.kafka_security.describe())
            self.broker_problem = None
        self._producer_ready.set()
        self.relay.start()
        self.background.append(asyncio.create_task(self._housekeeping(), name=f"{self.name}-housekeeping"))
        for consumer in self.consumers:
            consumer.start()
        for lane in self.lanes:
            lane.start()

    async def _housekeeping(self) -> None:
        """Prune the inbox and the expired idempotency keys now and then; a failure is logged and retried at the
        next round."""
        retention = timedelta(hours=self.settings.inbox_retention_hours)
        while True:
            try:
                removed = await prune_inbox(self.engine, self.inbox_table, retention)
                if removed:
                    log.info("%s: pruned %d inbox entries older than %s", self.name, removed, retention)
                await self.prune_idempotency_keys()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: inbox pruning failed (%s); retrying later", self.name, exc)
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)

    async def prune_idempotency_keys(self) -> int:
        """Delete the Idempotency-Keys older than IDEMPOTENCY_KEY_TTL_HOURS (by the service's clock)."""
        if self.idempotency_table is None:
            return 0
        ttl = timedelta(hours=self.settings.idempotency_key_ttl_hours)
        removed = await prune_keys(self.engine, self.idempotency_table, self.clock.now() - ttl)
        if removed:
            log.info("%s: pruned %d idempotency keys older than %s", self.name, removed, ttl)
        return removed

    async def wait_started(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self._producer_ready.wait(), timeout)

    async def stop(self) -> None:
        if not self._started:
            return
        for callback in self._stop_first:
            await callback()
        self._started = False
        if self._starter is not None and not self._starter.done():
            self._starter.cancel()
            await asyncio.gather(self._starter, return_exceptions=True)
        await asyncio.gather(*(lane.stop() for lane in self.lanes), return_exceptions=True)
        await asyncio.gather(*(c.stop() for c in self.consumers), return_exceptions=True)
        await asyncio.gather(*(t.stop() for t in self.timers), return_exceptions=True)
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        if self._producer_ready.is_set():
            await self.relay.stop(drain_timeout=self.settings.shutdown_grace_seconds / 2)
        await self.producer.stop()
        await self.engine.dispose()
        for callback in self._stop_last:
            await callback()

    # ------------------------------------------------------------------ observation

    async def database_ok(self) -> bool:
        try:
            async with asyncio.timeout(2):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def broker_ok(self) -> bool:
        if not self._producer_ready.is_set():
            return False
        try:
            async with asyncio.timeout(2):
                return bool(await self.producer.client.force_metadata_update())
        except Exception:
            return False

    async def readiness(self) -> dict[str, bool]:
        db, broker = await asyncio.gather(self.database_ok(), self.broker_ok())
        checks = {"database": db, "broker": broker}
        for consumer in self.consumers:
            # Reachable, not necessarily assigned: joining the group (after a restart it waits out the dead
            # member's session) shows in /quietz as unknown lag, and is no reason to stop serving.
            checks[f"consumer:{consumer.group}"] = consumer.healthy
        for name, check in self.readiness_checks.items():
            try:
                checks[name] = await check()
            except Exception as exc:  # e.g. the database is down: that check says so already
                log.debug("%s: readiness check %s could not run: %s", self.name, name, exc)
                checks[name] = False
        return checks

    async def unapplied(self, topics: Sequence[str]) -> int | None:
        """Events of these topics on the broker that this service's consumer groups (all replicas) have not
        applied yet; None when that cannot be told (no consumer of a topic, broker unreachable)."""
        total = 0
        for topic in topics:
            groups = [c for c in self.consumers if topic in c.topics]
            if not groups:
                return None
            for consumer in groups:
                lag = await consumer.group_lag(topic)
                if lag is None:
                    return None
                total += lag
        return total

    async def quiet_report(self) -> QuietReport:
        stats = await self.relay.stats()
        metrics.OUTBOX_BACKLOG.set(stats.backlog)
        metrics.OUTBOX_OLDEST_AGE.set(stats.oldest_age_seconds)
        report = QuietReport(service=self.name, outbox_backlog=stats.backlog)
        for consumer in self.consumers:
            report.consumer_lag[consumer.group] = await consumer.lag()
        for timer in self.timers:
            report.timers_due[timer.name] = await timer.due_now()
        return report
