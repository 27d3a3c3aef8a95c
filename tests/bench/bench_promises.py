"""promise-tracker's figures: 100,000 active promises whose deadlines pass within one simulated day.

Deadlines are the end of the promised day in each customer's time zone, so they come in clusters: here 24
clusters (one per hour of the day, as 24 time zones would give), ~4,200 promises each. The simulated clock
steps through the day an hour at a time; at each step a whole cluster falls due at once and the service's
own deadline timer (claim with FOR UPDATE SKIP LOCKED, judge set-wise, outbox) and relay handle it.
The note adds the CPU per check over the stepped day (this process = the timer and mostly the relay,
PostgreSQL, the broker): steadier than the wall-clock figure on a shared machine.

- promise_deadline_checks_per_s: promises judged / the time from each clock step until the timer's last
  batch of that step committed, summed over the steps (baseline: raw batched upserts, since a check is a
  few batched row writes).
- deadline_to_broken_p99_ms: per promise, from the wall moment the simulated clock passed its deadline to
  the broker's timestamp of its promise.broken; the 99th percentile.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from dunning_events import topics
from dunning_events.bulk import raw_connection
from dunning_kit.clock import SimulatedClock
from dunning_kit.db import make_engine
from dunning_kit.services import spec
from dunning_kit.testing import poll_until, start_service, wait_until_quiet

from .harness import BenchContext, Figure
from .processes import broker_cpu_seconds, postgres_cpu_seconds

DAY = datetime(2026, 3, 10, tzinfo=UTC)
CLUSTERS = 24
PROMISES_PER_CUSTOMER = 5
SCHEMA = "promise_tracker"
BATCH = int(os.environ.get("BENCH_PROMISE_BATCH", "1000"))  # the service defaults: TIMER_BATCH_SIZE
WORKERS = int(os.environ.get("BENCH_PROMISE_WORKERS", "2"))  # PROMISE_DEADLINE_WORKERS


async def _seed(database_url: str, n: int) -> None:
    """COPY n active promises (one invoice each) straight into the service's tables."""
    engine = make_engine(database_url, SCHEMA, pool_size=1)
    created = DAY - timedelta(days=5)
    customers = max(1, n // PROMISES_PER_CUSTOMER)
    try:
        async with engine.connect() as conn:
            apg: Any = await raw_connection(conn, in_transaction=False)
            await apg.copy_records_to_table(
                "customers", schema_name=SCHEMA, columns=["tenant_id", "customer_id", "time_zone"],
                records=[("acme", f"C-{c:06d}", "UTC") for c in range(customers)],
            )  # fmt: skip
            invoices, promises, commitments, timers = [], [], [], []
            for i in range(n):
                cluster = i % CLUSTERS + 1
                check_at = DAY + timedelta(hours=cluster)
                customer = f"C-{i % customers:06d}"
                invoice = f"INV-{i:07d}"
                promise = f"P-{cluster:02d}-{i:07d}"
                invoices.append(("acme", invoice, customer, f"{i:07d}", "EUR", 50_000, 50_000, "open"))
                promises.append(
                    ("acme", promise, customer, [invoice], "EUR", 50_000, 0, (check_at - timedelta(days=1)).date(),
                     check_at - timedelta(seconds=1), "collector", "active", created)
                )  # fmt: skip
                commitments.append(("acme", invoice, "promise", promise))
                timers.append(("acme", promise, check_at))
            await apg.copy_records_to_table(
                "invoices", schema_name=SCHEMA, records=invoices,
                columns=["tenant_id", "invoice_id", "customer_id", "number", "currency", "total_minor",
                         "balance_minor", "status"],
            )  # fmt: skip
            await apg.copy_records_to_table(
                "promises", schema_name=SCHEMA, records=promises,
                columns=["tenant_id", "promise_id", "customer_id", "invoice_ids", "currency", "amount_minor",
                         "received_minor", "promised_date", "deadline", "recorded_by", "status",
                         "created_at"],
            )  # fmt: skip
            await apg.copy_records_to_table(
                "commitments", schema_name=SCHEMA, records=commitments,
                columns=["tenant_id", "invoice_id", "holder_kind", "holder_id"],
            )  # fmt: skip
            await apg.copy_records_to_table(
                "deadline_timers", schema_name=SCHEMA, records=timers, columns=["tenant_id", "promise_id", "check_at"]
            )
            await apg.execute(f"ANALYZE {SCHEMA}.deadline_timers")
            await apg.execute(f"ANALYZE {SCHEMA}.promises; ANALYZE {SCHEMA}.invoices; ANALYZE {SCHEMA}.customers")
    finally:
        await engine.dispose()


async def _broken_timestamps(bootstrap_servers: str, n: int) -> dict[str, float]:
    """promise_id -> the broker's timestamp (s) of its promise.broken."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, max_poll_records=5000)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(topics.PROMISES, p) for p in sorted(consumer.partitions_for_topic(topics.PROMISES) or [])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 300
        while len(seen) < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for r in records:
                    attributes = dict(r.headers or ())  # CloudEvents binary mode: the attributes are headers
                    if attributes.get("ce_type") == b"promise.broken":
                        seen.setdefault(attributes["ce_subject"].decode(), r.timestamp / 1000)
        return seen
    finally:
        await consumer.stop()


async def _timer_alone(ctx: BenchContext, n: int) -> float:
    """The same n due promises judged by the deadline code alone (no relay, no HTTP, no consumer in the
    process): what the check itself costs, for comparison with the in-service figure."""
    from dunning_kit.db import make_sessions
    from promise_tracker.adapters import orm
    from promise_tracker.adapters.outbox import SetwiseOutboxWriter
    from promise_tracker.service_layer import deadlines

    database_url = ctx.fresh_database()
    await _seed(database_url, n)
    engine = make_engine(database_url, SCHEMA, pool_size=2)
    sessions = make_sessions(engine)
    outbox = SetwiseOutboxWriter(orm.outbox)
    judged = 0
    try:
        started = time.perf_counter()
        while True:
            async with sessions() as session, session.begin():
                fired = await deadlines.fire_due(session, outbox, DAY + timedelta(days=1), BATCH)
            if not fired:
                break
            judged += fired
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    assert judged == n
    return n / elapsed


def _cpu_meter(ctx: BenchContext) -> Any:
    """CPU seconds used so far by this process, the embedded PostgreSQL (postmaster and its backends) and
    the embedded broker: the wall figures are noisy on a shared machine, CPU per check is not."""

    def read() -> tuple[float, float, float]:
        return time.process_time(), postgres_cpu_seconds(ctx) or 0.0, broker_cpu_seconds(ctx) or 0.0

    return read


def _outbox_empty(runtime: Any) -> Any:
    async def check() -> bool:
        return (await runtime.relay.stats()).backlog == 0

    return check


async def run(ctx: BenchContext) -> list[Figure]:
    n = ctx.n(100_000)
    database_url = ctx.fresh_database()
    await _seed(database_url, n)
    clock = SimulatedClock(DAY)
    svc = await start_service(
        spec("promise-tracker"),
        database_url=database_url,
        bootstrap_servers=ctx.broker.bootstrap_servers,
        clock=clock,
        overrides={
            "promise_deadline_settle_seconds": 0,
            "timer_batch_size": BATCH,
            "promise_deadline_workers": WORKERS,
        },
    )
    runtime = svc.runtime
    timer = next(t for t in runtime.timers if t.name == "promise-deadlines")
    fired_log: list[tuple[float, int]] = []  # (wall time a claim's transaction committed, promises judged)
    drained = asyncio.Event()
    fire_due = timer.fire_due

    async def observed(now: datetime) -> int:
        fired = await fire_due(now)
        if fired:
            fired_log.append((time.time(), fired))
        elif fired_log:
            drained.set()  # a claim found nothing left after this step's work: the step is done
        return fired

    timer.fire_due = observed
    step_walls: dict[int, float] = {}
    busy_s = 0.0
    try:
        await wait_until_quiet([runtime], timeout=120)
        cpu = _cpu_meter(ctx)
        cpu_before = cpu()
        for cluster in range(1, CLUSTERS + 1):
            fired_log.clear()
            drained.clear()
            step_walls[cluster] = time.time()
            clock.set(DAY + timedelta(hours=cluster))
            await asyncio.wait_for(drained.wait(), timeout=300)
            busy_s += fired_log[-1][0] - step_walls[cluster]
            # The relay finishes publishing the step's events before the clock moves on (the latency
            # figure includes it); a light poll, so the measurement does not load the database itself.
            await poll_until(_outbox_empty(runtime), timeout=300, what="the relay to publish the step's events")
        cpu_used = [after - before for after, before in zip(cpu(), cpu_before, strict=True)]
        broken_at = await _broken_timestamps(ctx.broker.bootstrap_servers, n)
    finally:
        await svc.stop()

    alone = await _timer_alone(ctx, n)
    latencies = sorted((at - step_walls[int(promise_id.split("-")[1])]) * 1000 for promise_id, at in broken_at.items())
    assert len(latencies) == n, f"only {len(latencies)} of {n} promise.broken events reached the broker"
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    p50 = latencies[len(latencies) // 2]
    per_cluster = n // CLUSTERS
    return [
        Figure(
            "promise_deadline_checks_per_s",
            n / busy_s,
            "checks/s",
            "raw_pg_batched_upsert_rows_per_s",
            f"{n} promises in {CLUSTERS} clusters of ~{per_cluster} due at once; set-wise batches of {BATCH} x {WORKERS} "
            f"({busy_s:.1f}s busy in total, relay publishing alongside); the deadline code alone, one batch at a "
            f"time without relay: {alone:,.0f}/s; CPU per check, timer + relay + broker: "
            f"Python {cpu_used[0] / n * 1e6:.0f} µs, PostgreSQL {cpu_used[1] / n * 1e6:.0f} µs, "
            f"broker {cpu_used[2] / n * 1e6:.0f} µs",
        ),
        Figure(
            "deadline_to_broken_p99_ms",
            p99,
            "ms",
            None,
            f"clock passes a cluster's deadline -> promise.broken on the broker (p50 {p50:.0f} ms, "
            f"max {latencies[-1]:.0f} ms; ~{per_cluster} promises due at the same instant)",
        ),
    ]


if __name__ == "__main__":  # a quick manual run: python -m tests.bench.bench_promises
    from dunning_kit.testing import BrokerBackend, PostgresBackend

    async def _main() -> None:
        pg = PostgresBackend.embedded()
        await asyncio.to_thread(pg.build_template)
        broker = BrokerBackend.embedded()
        try:
            for fig in await run(BenchContext(pg=pg, broker=broker, scale=0.1)):
                print(fig)
        finally:
            broker.stop()
            pg.stop()

    asyncio.run(_main())
