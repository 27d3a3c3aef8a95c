"""Raw baselines measured in the same run: broker produce/consume and batched PostgreSQL upserts."""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaConsumer
from sqlalchemy import BigInteger, Column, MetaData, String, Table, text
from sqlalchemy.dialects.postgresql import insert

from dunning_events.kafka import ensure_topics, make_producer
from dunning_kit.db import make_engine

from .harness import BenchContext, Figure

PAYLOAD = b'{"type":"invoice.created","data":{' + b'"x":"' + b"y" * 480 + b'"}}'  # ~ one real event


async def measure_raws(ctx: BenchContext) -> list[Figure]:
    n = ctx.n(100_000)
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(ctx.broker.bootstrap_servers, [topic])
    producer = make_producer(ctx.broker.bootstrap_servers, "bench-raw")
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, PAYLOAD, key=f"acme:C-{i % 500}".encode()) for i in range(n)]
        for f in futures:
            await f
        produce_s = time.perf_counter() - started
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=ctx.broker.bootstrap_servers, group_id="bench-raw", auto_offset_reset="earliest",
        enable_auto_commit=False, max_poll_records=5000,
    )  # fmt: skip
    await consumer.start()
    try:
        got = 0
        started = time.perf_counter()
        while got < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            got += sum(len(v) for v in batch.values())
        consume_s = time.perf_counter() - started
    finally:
        await consumer.stop()

    rows = ctx.n(100_000)
    engine = make_engine(ctx.fresh_database(), "bench_raw", pool_size=2)
    md = MetaData()
    table = Table(
        "rows", md, Column("k", String(64), primary_key=True), Column("v", BigInteger), Column("label", String(200))
    )
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS bench_raw"))
        await conn.run_sync(md.create_all)
    started = time.perf_counter()
    for start in range(0, rows, 1000):
        batch_rows = [{"k": f"k{i}", "v": i, "label": "invoice"} for i in range(start, min(rows, start + 1000))]
        stmt = insert(table)
        async with engine.begin() as conn:
            await conn.execute(
                stmt.on_conflict_do_update(index_elements=["k"], set_={"v": stmt.excluded.v}), batch_rows
            )
    upsert_s = time.perf_counter() - started
    await engine.dispose()
    return [
        Figure("raw_produce_per_s", n / produce_s, "msg/s", note=f"{n} x {len(PAYLOAD)} B, acks=all"),
        Figure("raw_consume_per_s", n / consume_s, "msg/s", note=f"{n} records, getmany"),
        Figure("raw_pg_batched_upsert_rows_per_s", rows / upsert_s, "rows/s", note="1000 rows per transaction"),
    ]
