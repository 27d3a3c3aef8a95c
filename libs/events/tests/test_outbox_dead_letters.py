"""One bad row cannot block a topic: rows the broker refuses for good leave the outbox for its dead-letter table and
the rows behind them go on (head and lane); services sharing one database publish side by side."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

from dunning_events import topics
from dunning_events.codec import decode
from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    Allocation,
    Contact,
    CustomerUpserted,
    InvoiceCreated,
    PaymentApplied,
    PromiseCreated,
)
from dunning_events.outbox import DEFAULT_MAX_MESSAGE_BYTES, OutboxRelay, OutboxWriter
from dunning_events.tables import outbox_table
from dunning_kit.db import make_engine
from dunning_kit.testing import BrokerBackend, poll_until

from .conftest import PlumbingDb, outbox

AT = datetime(2026, 3, 10, tzinfo=UTC)
# The embedded broker (Tansu 0.6.0) has no largest message of its own: it acknowledged a 100 MB record when we tried.
# Kafka refuses a message above max.message.bytes (1,048,588 by default); the relay refuses above its
# max_message_bytes (1,000,000 by default) before sending, whichever broker it talks to.
HUGE_TAGS = [f"tag-{n:07d}-{'x' * 40}" for n in range(40_000)]  # ~2 MB of tags


def customer(tenant: str, customer_id: str, tags: list[str]) -> Envelope[EventData]:
    return new_event(
        CustomerUpserted(
            customer_id=customer_id, name="Initech", tags=tags,
            contacts=[Contact(name="AP", email="ap@initech.example")],
        ),
        tenant_id=tenant, source="test", occurred_at=AT,
    )  # fmt: skip


def invoice(tenant: str, customer_id: str, n: int) -> Envelope[EventData]:
    return new_event(
        InvoiceCreated(
            customer_id=customer_id, invoice_id=f"INV-{n}", number=f"{n:05d}", currency="EUR",
            total=Decimal("100.00"), balance=Decimal("100.00"), issue_date=date(2026, 3, 1),
            due_date=date(2026, 3, 31),
        ),
        tenant_id=tenant, source="test", occurred_at=AT,
    )  # fmt: skip


def payment(tenant: str, customer_id: str, invoice_id: str, allocations: int = 1) -> Envelope[EventData]:
    return new_event(
        PaymentApplied(
            customer_id=customer_id, payment_id=f"PAY-{uuid.uuid4().hex[:8]}", currency="EUR",
            amount=Decimal("100.00"), received_on=date(2026, 3, 10), unapplied=Decimal(0),
            allocations=[
                Allocation(invoice_id=invoice_id if n == 0 else f"{invoice_id}-{n:06d}-{'y' * 40}",
                           amount=Decimal("100.00"), invoice_balance_after=Decimal(0), invoice_status_after="paid")
                for n in range(allocations)
            ],
        ),
        tenant_id=tenant, source="test", occurred_at=AT,
    )  # fmt: skip


async def commit(db: PlumbingDb, *events: Envelope[Any]) -> None:
    async with db.sessions() as session, session.begin():
        await OutboxWriter(outbox).add(session, list(events))


async def dead_letters(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(
            await conn.execute(
                text(
                    "SELECT id, event_id, event_type, topic, key, length(payload) AS size, error FROM outbox_dead_letters"
                )
            )
        )


class Topic:
    """Reads a topic from its start (every partition, no consumer group: nothing to join), remembering the ids seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
            fetch_max_bytes=200 * 1024 * 1024, max_partition_fetch_bytes=200 * 1024 * 1024,
        )  # fmt: skip
        self.seen: list[uuid.UUID] = []

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer.topics()
        tps = [TopicPartition(self.topic, p) for p in sorted(self.consumer.partitions_for_topic(self.topic) or ())]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)

    async def has(self, *events: Envelope[Any]) -> bool:
        batch = await self.consumer.getmany(timeout_ms=100)
        self.seen.extend(decode(r.headers, r.value).id for records in batch.values() for r in records)
        return all(ev.id in self.seen for ev in events)


@pytest_asyncio.fixture
async def ledger_topic(broker: BrokerBackend, producer: AIOKafkaProducer) -> AsyncIterator[Topic]:
    reader = Topic(broker.bootstrap_servers, topics.LEDGER)  # `producer` created the topics
    await reader.start()
    yield reader
    await reader.consumer.stop()


def dead_lettered_count(topic: str) -> float:
    return REGISTRY.get_sample_value("dunning_outbox_dead_lettered_total", {"topic": topic}) or 0.0


class RefusingBroker:
    """The producer as Kafka answers it: a record batch larger than `max_bytes` fails with MessageSizeTooLargeError
    (the broker's MESSAGE_TOO_LARGE), and `transient` failures answer KafkaTimeoutError first. Everything else goes to
    the real broker."""

    def __init__(self, producer: AIOKafkaProducer, max_bytes: int, transient: int = 0) -> None:
        self._producer = producer
        self.max_bytes = max_bytes
        self.transient = transient
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        failure: BaseException | None = None
        if self.transient:
            self.transient -= 1
            failure = KafkaTimeoutError()
        elif batch.size() > self.max_bytes:
            self.refused += 1
            failure = MessageSizeTooLargeError()
        if failure is None:
            return await self._producer.send_batch(batch, topic, partition=partition)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(failure)
        return future


async def run_until(relay: OutboxRelay, check: Callable[[], Any], *, timeout: float, what: str) -> None:
    relay.start()
    try:
        await poll_until(check, timeout=timeout, what=what)
    finally:
        await relay.stop(drain_timeout=1)


# ---------------------------------------------------------------- one bad row


async def test_an_oversized_customer_is_set_aside_and_the_payment_behind_it_reaches_the_broker_within_10_s(
    db: PlumbingDb, producer: AIOKafkaProducer, ledger_topic: Topic
) -> None:
    huge = customer("acme", "C-1", HUGE_TAGS)
    inv, later = invoice("acme", "C-1", 1), invoice("globex", "G-1", 2)
    paid = payment("acme", "C-1", inv.subject)
    await commit(db, inv)
    await commit(db, huge)
    await commit(db, paid)  # a settlement of the same customer: waits until the customer row is out of the way
    await commit(db, later)
    before = dead_lettered_count(topics.LEDGER)
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=producer)
    assert relay.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES

    started = asyncio.get_running_loop().time()
    await run_until(relay, lambda: ledger_topic.has(inv, paid, later), timeout=10, what="the payment on the broker")
    assert asyncio.get_running_loop().time() - started < 10

    (row,) = await dead_letters(db.engine)
    assert (row.event_id, row.event_type, row.topic, row.key) == (
        huge.id,
        "customer.upserted",
        topics.LEDGER,
        "acme:C-1",
    )
    assert row.size > DEFAULT_MAX_MESSAGE_BYTES and "MessageSizeTooLarge" in row.error and "bytes" in row.error
    assert await db.unpublished() == 0, "the dead-lettered row left the outbox; every other row was published"
    assert huge.id not in ledger_topic.seen
    assert ledger_topic.seen.index(inv.id) < ledger_topic.seen.index(paid.id), "the customer's order is kept"
    assert dead_lettered_count(topics.LEDGER) == before + 1


@pytest.mark.parametrize("bad", ["customer (the head)", "payment (the lane)"])
async def test_a_row_the_broker_refuses_is_dead_lettered_and_the_rows_of_its_batch_go_on(
    db: PlumbingDb, producer: AIOKafkaProducer, ledger_topic: Topic, bad: str
) -> None:
    # The broker refuses what the relay lets through (its own limit is higher here): only the broker's answer
    # tells which row is bad, and the relay must not retry that batch forever.
    refusing = RefusingBroker(producer, max_bytes=1_048_588)
    if bad.startswith("customer"):
        huge = customer("acme", "C-1", HUGE_TAGS)
    else:
        huge = payment("acme", "C-1", "INV-1", allocations=20_000)  # ~2 MB of allocations: a lane round
    small = [invoice("acme", "C-1", n) for n in range(2, 5)]
    paid = payment("acme", "C-2", "INV-9")
    await commit(db, huge)
    await commit(db, *small, paid)
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=refusing, max_message_bytes=50_000_000)  # type: ignore[arg-type]

    await run_until(relay, lambda: ledger_topic.has(*small, paid), timeout=10, what="the rows behind the bad one")

    (row,) = await dead_letters(db.engine)
    assert row.event_id == huge.id and "MessageSizeTooLargeError" in row.error
    assert refusing.refused >= 2, "the batch was refused, then the row alone"
    assert await db.unpublished() == 0
    assert huge.id not in ledger_topic.seen
    assert [e for e in ledger_topic.seen if e in {ev.id for ev in small}] == [ev.id for ev in small]


async def test_a_transient_broker_error_is_retried_and_never_dead_lettered(
    db: PlumbingDb, producer: AIOKafkaProducer, ledger_topic: Topic
) -> None:
    events = [invoice("acme", "C-1", n) for n in range(3)]
    await commit(db, *events)
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=RefusingBroker(producer, 1_048_588, transient=1))  # type: ignore[arg-type]
    with pytest.raises(KafkaTimeoutError):
        await relay.publish_batch()
    assert await db.unpublished() == 3 and await dead_letters(db.engine) == []
    assert await relay.publish_batch() == 3
    await poll_until(lambda: ledger_topic.has(*events), timeout=10, what="the retried rows")
    assert await dead_letters(db.engine) == []


# ---------------------------------------------------------------- services sharing one database


@pytest_asyncio.fixture
async def other_service(database_url: str) -> AsyncIterator[tuple[AsyncEngine, Any]]:
    """A second service's schema (its own outbox) in the same database as the plumbing one."""
    engine = make_engine(database_url, "plumbing_other", pool_size=5)
    metadata = MetaData()
    table = outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS plumbing_other"))
        await conn.run_sync(metadata.create_all)
    yield engine, table
    await engine.dispose()


@pytest.mark.parametrize("way", ["head", "lane"])
async def test_two_services_sharing_a_database_publish_at_the_same_time(
    db: PlumbingDb, other_service: tuple[AsyncEngine, Any], producer: AIOKafkaProducer, way: str
) -> None:
    other_engine, other_outbox = other_service
    mine = payment("acme", "C-1", "INV-1")
    theirs = payment("acme", "C-2", "INV-2")
    await commit(db, mine)
    async with other_engine.begin() as conn:
        await OutboxWriter(other_outbox).add(conn, [theirs])
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=producer)
    other = OutboxRelay(engine=other_engine, table=other_outbox, producer=producer)
    holding, other_published = asyncio.Event(), asyncio.Event()

    async def hold_the_lock_until_the_other_service_published(_: int) -> None:
        holding.set()  # inside this relay's round: its advisory lock is held
        await asyncio.wait_for(other_published.wait(), timeout=10)

    relay.after_publish_hook = hold_the_lock_until_the_other_service_published

    async def other_round() -> int:
        await holding.wait()
        publish = other.publish_batch if way == "head" else other.publish_lane
        n = await asyncio.wait_for(publish(), timeout=5)
        other_published.set()
        return n

    publish = relay.publish_batch if way == "head" else relay.publish_lane
    mine_published, theirs_published = await asyncio.gather(publish(), other_round())
    assert (mine_published, theirs_published) == (1, 1), "the other service published while this one held its lock"


# ---------------------------------------------------------------- a topic the service does not produce


async def test_a_row_for_a_topic_the_service_does_not_produce_is_set_aside_before_sending(
    db: PlumbingDb, producer: AIOKafkaProducer, ledger_topic: Topic
) -> None:
    # A service's Kafka user may write only the topics its runtime declares (`produces`, deploy/README.md): the
    # relay holds to the same list, so a stray event is set aside here, named, instead of failing on the broker.
    stray = new_event(
        PromiseCreated(
            customer_id="C-1", promise_id="P-1", invoice_ids=["INV-1"], amount=Decimal("10.00"), currency="EUR",
            promised_date=date(2026, 3, 20), deadline=datetime(2026, 3, 21, tzinfo=UTC), recorded_by="collector",
        ),
        tenant_id="acme", source="test", occurred_at=AT,
    )  # fmt: skip
    inv = invoice("acme", "C-1", 1)
    await commit(db, stray, inv)
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=producer, topics=[topics.LEDGER])

    await run_until(relay, lambda: ledger_topic.has(inv), timeout=10, what="the ledger row behind the stray one")

    (row,) = await dead_letters(db.engine)
    assert (row.event_id, row.topic) == (stray.id, topics.PROMISES)
    assert "is not a topic this service produces" in row.error and topics.LEDGER in row.error
    assert await db.unpublished() == 0
