"""The foundation's figures: outbox relay publish rate and the batch consumer's apply rate (effects committed)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from aiokafka import AIOKafkaProducer
from sqlalchemy import BigInteger, Column, MetaData, String, Table, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events import topics
from dunning_events.consumer import BatchConsumer, ConsumedEvent
from dunning_events.envelope import new_event
from dunning_events.events import InvoiceCreated
from dunning_events.inbox import Inbox
from dunning_events.kafka import ensure_topics, make_producer
from dunning_events.money import to_minor
from dunning_events.outbox import OutboxRelay, OutboxWriter
from dunning_events.tables import inbox_table, outbox_table
from dunning_kit.db import make_engine, make_sessions

from .harness import BenchContext, Figure

SCHEMA = "bench_plumbing"
metadata = MetaData()
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
# A projection like the ones the services keep: one row per invoice with its open balance.
balances = Table(
    "balances",
    metadata,
    Column("tenant_id", String(100), primary_key=True),
    Column("invoice_id", String(200), primary_key=True),
    Column("balance_minor", BigInteger, nullable=False),
)


def event(i: int):  # type: ignore[no-untyped-def]
    return new_event(
        InvoiceCreated(
            customer_id=f"C-{i % 2000}", invoice_id=f"INV-{i}", number=f"{i:08d}", currency="EUR",
            total=Decimal("120.50"), balance=Decimal("120.50"), issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31),
        ),
        tenant_id="acme", source="bench", occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
    )  # fmt: skip


async def project(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    rows = [
        {"tenant_id": e.envelope.tenant_id, "invoice_id": e.data.invoice_id,
         "balance_minor": to_minor(e.data.balance, e.data.currency)}
        for e in events
    ]  # fmt: skip
    stmt = insert(balances)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "invoice_id"], set_={"balance_minor": stmt.excluded.balance_minor}
        ),
        rows,
    )


async def run(ctx: BenchContext) -> list[Figure]:
    n = ctx.n(100_000)
    engine = make_engine(ctx.fresh_database(), SCHEMA, pool_size=4)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    sessions = make_sessions(engine)
    await ensure_topics(ctx.broker.bootstrap_servers)
    producer: AIOKafkaProducer = make_producer(ctx.broker.bootstrap_servers, "bench-plumbing")
    await producer.start()
    try:
        events = [event(i) for i in range(n)]
        writer = OutboxWriter(outbox)
        for start in range(0, n, 1000):
            async with sessions() as session, session.begin():
                await writer.add(session, events[start : start + 1000])
        relay = OutboxRelay(engine=engine, table=outbox, producer=producer, batch_size=1000)
        started = time.perf_counter()
        while await relay.publish_batch():
            pass
        relay_s = time.perf_counter() - started

        group = f"bench-apply-{uuid.uuid4().hex[:6]}"
        consumer = BatchConsumer(
            group=group, topics=[topics.LEDGER], bootstrap_servers=ctx.broker.bootstrap_servers,
            session_factory=sessions, inbox=Inbox(inbox, group), handler=project, producer=producer, max_records=2000,
        )  # fmt: skip
        consumer.start()
        # The clock starts at the first committed batch, so the group join (broker-side rebalance delay)
        # is not counted as apply time; events applied before that instant are left out of the rate.
        first_seen, started = 0, 0.0
        while True:
            async with engine.connect() as conn:
                done = int(await conn.scalar(text("SELECT count(*) FROM balances")) or 0)
            if done and not started:
                first_seen, started = done, time.perf_counter()
            if done >= n:
                break
            await _pause()
        apply_s = time.perf_counter() - started
        applied_n = n - first_seen
        await consumer.stop()
    finally:
        await producer.stop()
        await engine.dispose()
    return [
        Figure("outbox_relay_publish_per_s", n / relay_s, "events/s", "raw_produce_per_s", f"{n} events, 1000/batch"),
        Figure(
            "consumer_apply_events_per_s",
            applied_n / apply_s,
            "events/s",
            "raw_consume_per_s",
            f"{n} events, inbox + projection upsert, one transaction per batch",
        ),
    ]


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.01)
