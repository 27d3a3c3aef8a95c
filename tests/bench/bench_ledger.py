"""ledger-sync's figure: a CSV import of 100,000 invoices, from the HTTP upload to the events on the broker.

The clock runs from the start of the upload until the broker holds one invoice.created per invoice
(counted by the topic's end offsets) and the import's ledger.synced; that includes parsing, validation,
the batched upserts, the outbox writes, the commit and the relay publishing everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from dunning_events import topics
from dunning_events.kafka import ensure_topics
from dunning_kit.testing import TEST_API_KEYS

from .harness import BenchContext, Figure
from .processes import ServiceReplicas, cpu_seconds, postgres_cpu_seconds

CUSTOMERS = 2_000


class BrokerCounter:
    """Counts the records arriving on the ledger topic (reading them: Tansu's end offsets under-count)."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, client_id="bench-ledger-count")
        self.created = 0
        self.synced = 0
        self.expected = 0
        self.done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer.topics()
        tps = [
            TopicPartition(topics.LEDGER, p) for p in sorted(self.consumer.partitions_for_topic(topics.LEDGER) or [])
        ]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)  # resolve "end" now, before anything is published
        self._task = asyncio.create_task(self._count())

    async def _count(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batch.values():
                for r in records:
                    kind = dict(r.headers or ()).get("ce_type")  # CloudEvents binary mode: a header
                    if kind == b"invoice.created":
                        self.created += 1
                    elif kind == b"ledger.synced":
                        self.synced += 1
            if self.expected and self.created >= self.expected and self.synced:
                self.done.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()


async def invoice_csv(n: int) -> AsyncIterator[bytes]:
    yield b"id,customer_id,number,currency,total,issue_date,due_date,terms\n"
    for start in range(0, n, 5_000):
        rows = [
            f"INV-{k:07d},C-{k % CUSTOMERS:05d},2026-{k:07d},EUR,{k % 9_000 + 100}.{k % 100:02d},2026-03-01,2026-03-31,net30\n"
            for k in range(start, min(n, start + 5_000))
        ]
        yield "".join(rows).encode()


REPLICAS = int(os.environ.get("BENCH_LEDGER_REPLICAS", "2"))


async def run(ctx: BenchContext) -> list[Figure]:
    n = ctx.n(100_000)
    await ensure_topics(ctx.broker.bootstrap_servers)
    counter = BrokerCounter(ctx.broker.bootstrap_servers)
    headers = {"Authorization": "Bearer acme-api-key", "content-type": "text/csv"}
    database_url = ctx.fresh_database()
    async with contextlib.AsyncExitStack() as stack:
        # ledger-sync in processes of its own, as deployed, so the bench's client and broker reader do not
        # share its interpreter.
        replicas = ServiceReplicas(
            "ledger_sync",
            REPLICAS,
            database_url=database_url,
            bootstrap_servers=ctx.broker.bootstrap_servers,
            env={"API_KEYS": TEST_API_KEYS, "LOG_LEVEL": "WARNING"},
        )
        stack.push_async_callback(replicas.stop)
        await replicas.wait_until("/readyz", timeout=60, what="ledger-sync to be ready")
        api = await stack.enter_async_context(
            httpx.AsyncClient(base_url=replicas.urls[0], headers=headers, timeout=600)
        )
        try:
            customers = "id,name,email,time_zone\n" + "".join(
                f"C-{k:05d},Customer {k},ap{k}@example.test,Europe/Berlin\n" for k in range(CUSTOMERS)
            )
            r = await api.post("/v1/imports/customers", content=customers.encode())
            r.raise_for_status()
            counter.expected = n  # every invoice.created and the import's ledger.synced
            await counter.start()
            started, cpu_started = time.perf_counter(), [cpu_seconds(pid) for pid in replicas.pids]
            pg_started, bench_cpu_started = postgres_cpu_seconds(ctx), time.process_time()
            r = await api.post("/v1/imports/invoices", content=invoice_csv(n))
            committed_s = time.perf_counter() - started
            r.raise_for_status()
            assert r.json()["imported"] == n, r.text[:300]
            await counter.done.wait()
            total_s = time.perf_counter() - started
            per_replica = [(cpu_seconds(p) - c) / n * 1e6 for p, c in zip(replicas.pids, cpu_started, strict=True)]
            cpu_us = sum(per_replica)
            split = " + ".join(f"{c:.0f}" for c in per_replica)
            pg_now = postgres_cpu_seconds(ctx)
            pg_us = f"{(pg_now - pg_started) / n * 1e6:.0f}" if pg_now is not None and pg_started is not None else "?"
            print(
                f"  ledger-sync CPU {cpu_us:.0f} ({split}) us/invoice, PostgreSQL CPU {pg_us} us/invoice "
                f"(this bench process: {(time.process_time() - bench_cpu_started) / n * 1e6:.0f}) over {total_s:.1f}s",
                flush=True,
            )
        finally:
            await counter.stop()
    return [
        Figure(
            "csv_import_invoices_per_s",
            n / total_s,
            "invoices/s",
            "raw_pg_batched_upsert_rows_per_s",
            f"{n} invoices: HTTP upload -> validated, upserted, outbox -> all events on the broker ({total_s:.1f}s); "
            f"{REPLICAS} ledger-sync replica process(es), CPU {cpu_us:.0f} us/invoice "
            f"(import + relay; per replica {split}, the first one takes the upload); PostgreSQL CPU {pg_us} us/invoice",
        ),
        Figure(
            "csv_import_committed_invoices_per_s",
            n / committed_s,
            "invoices/s",
            "raw_pg_batched_upsert_rows_per_s",
            f"{n} invoices until the import request returned ({committed_s:.1f}s; events publish meanwhile)",
        ),
    ]
