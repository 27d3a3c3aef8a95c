"""notifier's figures: step events on the broker -> messages accepted by the provider.

- email_sent_per_s: N `dunning.step.due` events (email channel, one invoice each) produced to the steps
  topic; from the first produce until a local SMTP sink has accepted the N-th message. Everything a real
  send does is in the loop: consume + delivery records, the ledger catch-up check, claim with SKIP LOCKED,
  the last look, sandboxed rendering (text + HTML, Babel formatting, signed links), pooled concurrent SMTP,
  outcome records + notification.sent through the outbox. Baseline: raw_consume_per_s.
- sms_sent_per_s: the same for SMS against the local fake of the Twilio Messages API (form POST, JSON).

The providers run in processes of their own, as real ones would (in-process they would share the
notifier's CPU and event loop): the SMTP sink only counts what it accepted (the dev sink parses and stores
each mail, which would measure the sink); the Twilio fake is dunning_kit.devfakes.twilio. The notifier runs
on a broker of its own so the ledger topic holds only this run's events (the ledger catch-up check must
otherwise first consume what other bench modules produced).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from dunning_events.bulk import raw_connection
from dunning_events.codec import encode
from dunning_events.envelope import new_event
from dunning_events.topics import partition_key
from dunning_kit.clock import SimulatedClock
from dunning_kit.db import make_engine
from dunning_kit.embedded import free_port, wait_for_port
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, poll_until, start_service, wait_until_quiet
from notifier.testing import EventFeed

from .harness import BenchContext, Figure
from .processes import ServiceReplicas, cpu_seconds

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SCHEMA = "notifier"
WORKERS = int(os.environ.get("BENCH_NOTIFIER_WORKERS", "2"))
BATCH = int(os.environ.get("BENCH_NOTIFIER_BATCH", "500"))
SINKS = int(os.environ.get("BENCH_SMTP_SINKS", "1"))
# The notifier as separate replica processes (0: in the bench process, e.g. for py-spy).
REPLICAS = int(os.environ.get("BENCH_NOTIFIER_REPLICAS", "2"))


def _sink_process(port: int, counter: Any, stop: Any) -> None:
    """A lean SMTP server (real dialogue over TCP, PIPELINING, dot-terminated DATA) that counts what it
    accepted into a counter shared with the bench; several processes may accept on one port."""
    from dunning_kit.devfakes.smtp_sink import SmtpCounter

    def accepted(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    async def serve() -> None:
        async with SmtpCounter(port=port, reuse_port=True, on_accept=accepted):
            await asyncio.to_thread(stop.wait)

    asyncio.run(serve())


def _twilio_process(port: int) -> None:
    from dunning_kit.devfakes.twilio import FakeTwilio

    async def serve() -> None:
        async with FakeTwilio(auto_callbacks=False, port=port):
            await asyncio.Event().wait()

    asyncio.run(serve())


async def _seed(database_url: str, n: int, channel: str) -> None:
    """The notifier's projections as the ledger would have left them (COPY, not the point of this bench)."""
    engine = make_engine(database_url, SCHEMA, pool_size=1)
    try:
        async with engine.connect() as conn:
            apg: Any = await raw_connection(conn, in_transaction=False)
            contacts = '[{"name": "AP", "email": "ap%d@example.com", "phone": "+1415555%04d", "role": "billing"}]'
            await apg.copy_records_to_table(
                "customers", schema_name=SCHEMA,
                columns=["tenant_id", "customer_id", "name", "locale", "time_zone", "contacts", "consent"],
                records=[("acme", f"{channel}-C-{i}", f"Customer {i} GmbH", "de-DE" if i % 2 else "en-US", "Europe/Berlin",
                          contacts % (i, i % 10000), '{"email": true, "sms": true}') for i in range(n)],
            )  # fmt: skip
            await apg.copy_records_to_table(
                "invoice_balances", schema_name=SCHEMA,
                columns=["tenant_id", "invoice_id", "customer_id", "number", "currency", "total_minor", "balance_minor", "status"],
                records=[("acme", f"{channel}-INV-{i}", f"{channel}-C-{i}", f"2026-{i:05d}", "EUR", 482000, 482000, "open")
                         for i in range(n)],
            )  # fmt: skip
            await apg.execute(f"ANALYZE {SCHEMA}.customers; ANALYZE {SCHEMA}.invoice_balances")
    finally:
        await engine.dispose()


async def _produce_steps(bootstrap: str, n: int, channel: str, clock: SimulatedClock) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5, max_batch_size=512 * 1024
    )
    await producer.start()
    feed = EventFeed(producer, clock)
    try:
        futures = []
        for i in range(n):
            step = feed.step(
                f"S-{channel}-{i}", customer_id=f"{channel}-C-{i}", invoices=[(f"{channel}-INV-{i}", f"2026-{i:05d}", "4820.00")],
                channels=[channel], template_id="firm_reminder" if channel == "email" else "escalation_sms",
            )  # fmt: skip
            env = new_event(step, tenant_id="acme", source="bench", occurred_at=NOW)
            headers, value = encode(env)  # the CloudEvents record
            futures.append(
                await producer.send(
                    "dunning.steps.v1", value, key=partition_key("acme", step.customer_id).encode(), headers=headers
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@dataclass
class Run:
    rate: float
    cpu_us: float  # the notifier per message (its replica processes; in-process: this whole process)
    provider_cpu_us: float  # the sink / fake per message

    def note(self) -> str:
        where = f"{REPLICAS} notifier replica processes" if REPLICAS else "notifier in the bench process"
        return (
            f"{where} on {os.cpu_count()} cores shared with PostgreSQL, the broker and the provider fake; CPU per "
            f"message: notifier {self.cpu_us:,.0f} µs, provider fake {self.provider_cpu_us:,.0f} µs"
        )


def _settings(overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        "dispatch_batch_size": BATCH, "dispatch_workers": WORKERS, "consumer_max_records": 2000, "smtp_pool_size": 32,
        "rate_limit_smtp_per_s": 1e6, "rate_limit_twilio_per_s": 1e6, "log_level": "WARNING", **overrides,
    }  # fmt: skip


def _replicas(database_url: str, bootstrap: str, overrides: dict[str, Any]) -> ServiceReplicas:
    """The notifier as REPLICAS OS processes (`python -m notifier`, as in its pods) on one database and
    broker, under a file clock: consumer-group members for the steps, SKIP LOCKED dispatchers, one relay."""
    return ServiceReplicas(
        "notifier", REPLICAS, database_url=database_url, bootstrap_servers=bootstrap, clock=NOW,
        env={"TIMER_POLL_INTERVAL": "0.2", "OUTBOX_POLL_INTERVAL": "0.05",
             **{k.upper(): str(v) for k, v in _settings(overrides).items()}},
    )  # fmt: skip


class _InProcess:
    """The notifier in the bench's own process (BENCH_NOTIFIER_REPLICAS=0: for profiling with py-spy)."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc

    @classmethod
    async def start(cls, database_url: str, bootstrap: str, overrides: dict[str, Any]) -> _InProcess:
        svc = await start_service(
            spec("notifier"), database_url=database_url, bootstrap_servers=bootstrap, clock=SimulatedClock(NOW),
            overrides=_settings(overrides),
        )  # fmt: skip
        return cls(svc)

    def cpu(self) -> float:
        return time.process_time()

    async def wait_until(self, path: str, timeout: float, what: str, interval: float) -> None:
        # The replicas' /quietz, in process: started, assigned, nothing in its outbox, lag or timers.
        await wait_until_quiet([self.svc.runtime], timeout=timeout)

    async def stop(self) -> None:
        await self.svc.stop()


async def _measure(
    ctx: BenchContext, channel: str, n: int, overrides: dict[str, Any], accepted: Any, provider_pids: list[int]
) -> Run:
    broker = BrokerBackend.embedded()
    database_url = ctx.fresh_database()
    await _seed(database_url, n, channel)
    if REPLICAS:
        notifier: ServiceReplicas | _InProcess = _replicas(database_url, broker.bootstrap_servers, overrides)
    else:
        notifier = await _InProcess.start(database_url, broker.bootstrap_servers, overrides)
    try:
        await notifier.wait_until("/quietz", 120, "the notifier replicas to be quiet", interval=0.1)
        started, cpu0 = time.perf_counter(), notifier.cpu()
        provider0 = sum(cpu_seconds(pid) for pid in provider_pids)
        await _produce_steps(broker.bootstrap_servers, n, channel, SimulatedClock(NOW))

        last_check = time.monotonic()

        async def all_accepted() -> bool:
            nonlocal last_check
            if time.monotonic() - last_check > 5:  # fail fast (with the reasons) instead of waiting it out
                last_check = time.monotonic()
                await _no_failed_sends(database_url, channel)
            return await accepted() >= n

        await poll_until(all_accepted, timeout=600, interval=0.02, what=f"{n} {channel} messages accepted")
        elapsed, cpu = time.perf_counter() - started, notifier.cpu() - cpu0
        provider = sum(cpu_seconds(pid) for pid in provider_pids) - provider0
        await notifier.wait_until("/quietz", 120, "the notifier replicas to be quiet", interval=0.1)
        await _check_records(database_url, n, channel)
        run = Run(n / elapsed, cpu / n * 1e6, provider / n * 1e6)
        print(f"  {channel}: {n} in {elapsed:.1f}s = {run.rate:,.0f} msg/s; {run.note()}", flush=True)
        return run
    finally:
        await notifier.stop()
        broker.stop()


async def _no_failed_sends(database_url: str, channel: str) -> None:
    """A send that failed or waits for a retry (in simulated time, which the bench does not move) would
    never be accepted: say so with the reasons instead of timing out."""
    engine = make_engine(database_url, SCHEMA, pool_size=1)
    try:
        async with engine.connect() as conn:
            apg: Any = await raw_connection(conn, in_transaction=False)
            bad = await apg.fetch(
                f"SELECT status, left(coalesce(error, ''), 200) AS error, count(*) AS n FROM {SCHEMA}.deliveries "
                "WHERE status IN ('failed', 'unknown', 'skipped') OR (status = 'pending' AND attempts > 0) "
                "GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5"
            )
    finally:
        await engine.dispose()
    if bad:
        raise AssertionError(f"{channel}: sends that will never be accepted: {[dict(r) for r in bad]}")


async def _check_records(database_url: str, n: int, channel: str) -> None:
    """Every message the provider took has its delivery record `sent` and its notification.sent in the
    outbox - exactly one each (at most once across replicas)."""
    engine = make_engine(database_url, SCHEMA, pool_size=1)
    try:
        async with engine.connect() as conn:
            apg: Any = await raw_connection(conn, in_transaction=False)
            sent = await apg.fetchval(f"SELECT count(*) FROM {SCHEMA}.deliveries WHERE status = 'sent'")
            other = await apg.fetchval(f"SELECT count(*) FROM {SCHEMA}.deliveries WHERE status <> 'sent'")
            events = await apg.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox WHERE event_type = 'notification.sent'")
    finally:
        await engine.dispose()
    if (sent, other, events) != (n, 0, n):
        raise AssertionError(f"{channel}: {sent} sent / {other} other deliveries, {events} notification.sent for {n}")


async def run(ctx: BenchContext) -> list[Figure]:
    mp = multiprocessing.get_context("spawn")
    n = ctx.n(20_000)
    counter, stop = mp.Value("l", 0), mp.Event()
    port = free_port()
    sinks = [mp.Process(target=_sink_process, args=(port, counter, stop), daemon=True) for _ in range(SINKS)]
    for sink in sinks:
        sink.start()
    try:
        await asyncio.to_thread(wait_for_port, port, 30)

        async def smtp_accepted() -> int:
            return int(counter.value)

        email = await _measure(
            ctx,
            "email",
            n,
            {"smtp_host": "127.0.0.1", "smtp_port": port},
            smtp_accepted,
            [s.pid for s in sinks if s.pid],
        )
    finally:
        stop.set()
        for sink in sinks:
            sink.join(10)
    n_sms = ctx.n(5_000)
    port = free_port()
    twilio = mp.Process(target=_twilio_process, args=(port,), daemon=True)
    twilio.start()
    try:
        await asyncio.to_thread(wait_for_port, port, 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def sms_accepted() -> int:
                return int((await http.get("/_fake/stats")).json()["messages"])

            sms = await _measure(
                ctx, "sms", n_sms, {"twilio_base_url": f"http://127.0.0.1:{port}"}, sms_accepted, [twilio.pid or 0]
            )
    finally:
        twilio.terminate()
        twilio.join(10)
    return [
        Figure("email_sent_per_s", email.rate, "msg/s", baseline="raw_consume_per_s",
               note=f"{n} step events -> SMTP accepted (render text+HTML, pooled SMTP, records + events); target >= 1000; {email.note()}"),
        Figure("sms_sent_per_s", sms.rate, "msg/s", baseline="raw_consume_per_s",
               note=f"{n_sms} step events -> fake Twilio Messages API accepted; {sms.note()}"),
    ]  # fmt: skip
