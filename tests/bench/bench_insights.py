"""insights' figures: the read model applying the mixed stream, aging and DSO at 1,000,000 open invoices, backfill.

- `insights_apply_events_per_s`: a mixed stream of all four topics (customers, invoices, payments, credits, voids,
  disputes, dunning steps, deliveries, promises) produced to the broker first, then applied by insights' own
  consumers (its HANDLERS table; two replica processes, as two pods share a group's partitions); the clock runs from the first applied batch to the
  last event in the inbox. Target >= 15,000 events/s. Ratio to the raw consume rate.
- `insights_aging_p95_ms`, `insights_dso_p95_ms`: the tenant-level aging (as of one of the last 20 days) and DSO
  (the 90 days to one of them) over HTTP, for a tenant with 1,000,000 open invoices over 18 months seeded by COPY
  (tests/bench/insights_seed.py). Target p95 < 300 ms each. Latencies: no raw baseline (like the other p99s).
- `insights_backfill_invoices_per_s`: ledger-sync holding 100,000 invoices (imported by CSV), the other three
  services running (their event exports empty), insights on a broker of its own (so nothing arrives by the stream)
  backfilling; the clock runs from `POST /v1/backfill` until every source is finished and the last invoice is in
  insights' table: the whole backfill. Target >= 20,000 invoices/s. Ratio to the raw batched-upsert rate.

A part whose code or route is not there (the handlers, the figure routes, the backfill) fails with the reason,
as any bench that fails does.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import statistics
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import text

from dunning_events.codec import encode
from dunning_events.envelope import EventData, new_event
from dunning_events.events import (
    Allocation,
    CreditNoteApplied,
    CustomerUpserted,
    DisputeOpened,
    DisputeResolved,
    DunningStepDue,
    InvoiceCreated,
    InvoiceVoided,
    NotificationDelivered,
    NotificationSent,
    PaymentApplied,
    PromiseCreated,
    PromiseKept,
    StepInvoice,
)
from dunning_events.kafka import ensure_topics, make_producer
from dunning_events.topics import partition_key
from dunning_kit.db import make_engine
from dunning_kit.kafka_access import kafka_access
from dunning_kit.services import spec
from dunning_kit.testing import TEST_API_KEYS, BrokerBackend, poll_until

from .harness import BenchContext, Figure
from .insights_seed import seed_open_book
from .processes import ServiceReplicas

TENANT = "acme"
API = {"Authorization": "Bearer acme-api-key"}
ADMIN = {"Authorization": "Bearer acme-admin-key"}
TODAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ENV = {"API_KEYS": TEST_API_KEYS, "LOG_LEVEL": "WARNING"}


def not_available(key: str, why: str) -> list[Figure]:
    """A part whose code or route is gone fails the bench with the reason (a figure is never silently left out)."""
    raise AssertionError(f"{key}: cannot be measured: {why}")


def missing(module: str, *names: str) -> str | None:
    """Why `module` cannot serve the bench (None when it has every name)."""
    try:
        found = importlib.import_module(module)
    except ImportError:
        return f"no module {module}"
    absent = [n for n in names if not hasattr(found, n)]
    return f"{module} has no {', '.join(absent)}" if absent else None


async def insights_process(
    ctx: BenchContext, database_url: str, broker: BrokerBackend, *, replicas: int = 1, **env: str
) -> ServiceReplicas:
    processes = ServiceReplicas(
        "insights", replicas, database_url=database_url, bootstrap_servers=broker.bootstrap_servers, env={**ENV, **env},
        clock=NOW,
    )  # fmt: skip
    await processes.wait_until("/readyz", timeout=90, what="insights to be ready")
    return processes


async def serves(url: str, *paths: str) -> str | None:
    """Why the service at `url` cannot serve the bench (None when its OpenAPI document has every path)."""
    async with httpx.AsyncClient(timeout=30) as http:
        documented = (await http.get(f"{url}/openapi.json")).json()["paths"]
    absent = [p for p in paths if p not in documented]
    return f"{url} serves no {', '.join(absent)}" if absent else None


# ---------------------------------------------------------------------------------------------- (a) the stream


def mixed_stream(invoices: int, customers: int) -> list[EventData]:
    """What a tenant's topics carry, in each customer's order: its upsert, then per invoice its creation, a dunning
    step and its delivery, and what happened next — paid (a promise kept before some), part-paid, credited, voided,
    disputed. About seven events per invoice, every topic."""
    out: list[EventData] = [
        CustomerUpserted(customer_id=f"C-{c:05d}", name=f"Customer {c}", segment=("smb", "enterprise", "demo")[c % 3])
        for c in range(customers)
    ]
    for k in range(invoices):
        customer = f"C-{k % customers:05d}"
        invoice, total = f"INV-{k:07d}", Decimal(1000 + k % 9000) / 4
        issue = TODAY - timedelta(days=60 + k % 300)
        due = issue + timedelta(days=30)
        currency = ("EUR", "EUR", "USD", "GBP")[k % 4]
        out.append(
            InvoiceCreated(customer_id=customer, invoice_id=invoice, number=f"N{k:07d}", currency=currency,
                           total=total, balance=total, issue_date=issue, due_date=due, version=1)
        )  # fmt: skip
        step = f"S-{k:07d}"
        sent_at = datetime.combine(due + timedelta(days=3), datetime.min.time(), UTC)
        out.append(
            DunningStepDue(
                customer_id=customer, step_id=step, policy_id="default", policy_version=1, step_index=2,
                step_name="follow_up_1", tone="gentle", template_id="follow_up_1", channels=["email"],
                currency=currency, amount_due=total, scheduled_for=sent_at,
                invoices=[StepInvoice(invoice_id=invoice, number=f"N{k:07d}", total=total, balance=total,
                                      due_date=due, days_overdue=3)],
            )
        )  # fmt: skip
        delivery = f"D-{k:07d}"
        out.append(NotificationSent(customer_id=customer, delivery_id=delivery, step_id=step, channel="email",
                                    invoice_ids=[invoice]))  # fmt: skip
        out.append(NotificationDelivered(customer_id=customer, delivery_id=delivery, step_id=step, channel="email",
                                         invoice_ids=[invoice]))  # fmt: skip
        fate = k % 10
        if fate < 5:  # paid in full, half of them after a promise
            if fate < 2:
                promise = f"PR-{k:07d}"
                deadline = sent_at + timedelta(days=7)
                out.append(PromiseCreated(customer_id=customer, promise_id=promise, invoice_ids=[invoice],
                                          currency=currency, amount=total, promised_date=deadline.date(),
                                          deadline=deadline, recorded_by="collector"))  # fmt: skip
                out.append(PromiseKept(customer_id=customer, promise_id=promise, invoice_ids=[invoice],
                                       currency=currency, amount=total, received=total))  # fmt: skip
            out.append(_payment(k, customer, invoice, currency, total, total, due + timedelta(days=5)))
        elif fate < 7:  # part-paid
            part = (total / 3).quantize(Decimal("0.01"))
            out.append(_payment(k, customer, invoice, currency, part, total, due + timedelta(days=9)))
        elif fate == 7:  # credited to zero
            out.append(
                CreditNoteApplied(customer_id=customer, credit_note_id=f"CN-{k:07d}", currency=currency, total=total,
                                  issued_on=due + timedelta(days=4),
                                  allocations=[Allocation(invoice_id=invoice, amount=total,
                                                          invoice_balance_after=Decimal(0),
                                                          invoice_status_after="paid", invoice_version_after=2)])
            )  # fmt: skip
        elif fate == 8:  # voided
            out.append(InvoiceVoided(customer_id=customer, invoice_id=invoice, number=f"N{k:07d}", currency=currency,
                                     total=total, balance=Decimal(0), issue_date=issue, due_date=due, status="void",
                                     version=2))  # fmt: skip
        else:  # disputed, then resolved
            out.append(DisputeOpened(customer_id=customer, invoice_id=invoice, invoice_version=2))
            out.append(DisputeResolved(customer_id=customer, invoice_id=invoice, invoice_version=3))
    return out


def _payment(k: int, customer: str, invoice: str, currency: str, paid: Decimal, total: Decimal, on: date) -> EventData:
    after = total - paid
    return PaymentApplied(
        customer_id=customer, payment_id=f"P-{k:07d}", currency=currency, amount=paid, received_on=on,
        unapplied=Decimal(0),
        allocations=[Allocation(invoice_id=invoice, amount=paid, invoice_balance_after=after,
                                invoice_status_after="paid" if not after else "open", invoice_version_after=2)],
    )  # fmt: skip


async def produce(broker: BrokerBackend, stream: list[EventData]) -> None:
    producer = make_producer(broker.bootstrap_servers, "bench-insights")
    await producer.start()
    try:
        occurred = NOW - timedelta(days=1)
        pending = []
        for data in stream:
            env = new_event(data, tenant_id=TENANT, source="bench", occurred_at=occurred)
            headers, value = encode(env)
            key = partition_key(TENANT, data.customer_id).encode()
            pending.append(await producer.send(data.topic, value, key=key, headers=list(headers)))
        for future in pending:
            await future
    finally:
        await producer.stop()


# Two replica processes, as the ledger and notifier benches run theirs: each group's partitions are shared between
# them (one event loop decoding and applying caps a process at about one core).
APPLY_REPLICAS = 2
INBOX_PER_GROUP = "SELECT consumer_group, count(*) FROM inbox GROUP BY consumer_group"


async def apply_stream(ctx: BenchContext) -> list[Figure]:
    key = "insights_apply_events_per_s"
    why = missing("insights.service_layer.handlers", "HANDLERS")
    if why:
        return not_available(key, why)
    invoices = ctx.n(200_000) // 7
    stream = mixed_stream(invoices, customers=max(100, invoices // 20))
    n = len(stream)
    await ensure_topics(ctx.broker.bootstrap_servers)
    await produce(ctx.broker, stream)
    database_url = ctx.fresh_database()
    engine = make_engine(database_url, "insights", pool_size=1)
    groups = len((await asyncio.to_thread(kafka_access, spec("insights"))).groups)  # its wiring's consumer groups
    replicas = await insights_process(ctx, database_url, ctx.broker, replicas=APPLY_REPLICAS)
    try:
        first_seen, started, cpu_started = 0, 0.0, replicas.cpu()
        deadline = time.perf_counter() + 900
        while True:
            replicas.check_alive()
            async with engine.connect() as conn:
                per_group = dict((await conn.execute(text(INBOX_PER_GROUP))).all())
            done = sum(per_group.values())
            if len(per_group) >= groups and not started:
                # From the moment every group has committed a batch: the groups' joins are not apply time.
                first_seen, started, cpu_started = done, time.perf_counter(), replicas.cpu()
            if done >= n:
                break
            assert time.perf_counter() < deadline, f"insights applied {done} of {n} events in 900 s"
            await asyncio.sleep(0.1)  # polling a process's progress on a deadline
        apply_s = time.perf_counter() - started
        cpu_us = (replicas.cpu() - cpu_started) / max(1, n - first_seen) * 1e6
    finally:
        await replicas.stop()
        await engine.dispose()
    applied = n - first_seen
    return [
        Figure(
            key, applied / apply_s, "events/s", "raw_consume_per_s",
            f"{n} events of all four topics ({invoices} invoices' lives) applied by {APPLY_REPLICAS} insights processes' "
            f"consumer groups in {apply_s:.1f}s (from when all {groups} groups had committed a batch; {first_seen} before left out), "
            f"CPU {cpu_us:.0f} us/event; target >= 15,000 events/s",
        )
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- (b) the figures

LATENCY_SAMPLES = 60
WARM_UP = 5


async def p95_ms(http: httpx.AsyncClient, path: str, params: list[dict[str, str]]) -> tuple[float, float]:
    """p95 and p50 in ms of GET `path` with each params in turn (after WARM_UP untimed calls)."""
    for p in params[:WARM_UP]:
        (await http.get(path, params=p)).raise_for_status()
    times = []
    for p in params:
        started = time.perf_counter()
        r = await http.get(path, params=p)
        times.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, f"{path} {p}: {r.status_code} {r.text[:500]}"
        assert r.json()["rows"], f"{path} {p}: no rows on a seeded book: {r.text[:500]}"
    cuts = statistics.quantiles(times, n=20)
    return cuts[18], statistics.median(times)


async def aging_and_dso(ctx: BenchContext) -> list[Figure]:
    keys = "insights_aging_p95_ms / insights_dso_p95_ms"
    database_url = ctx.fresh_database()
    engine = make_engine(database_url, "insights", pool_size=1)
    replicas = await insights_process(ctx, database_url, ctx.broker)
    try:
        why = await serves(replicas.urls[0], "/v1/figures/aging", "/v1/figures/dso")
        if why:
            return not_available(keys, why)
        book = await seed_open_book(engine, tenant_id=TENANT, today=TODAY, open_invoices=ctx.n(1_000_000))
        print(
            f"  seeded {book.open_invoices:,} open and {book.settled_invoices:,} settled invoices, {book.changes:,} "
            f"changes, {len(book.ar_daily):,} ar_daily and {len(book.sales_daily):,} sales_daily rows in "
            f"{book.seconds:.0f}s",
            flush=True,
        )
        days = [(TODAY - timedelta(days=i % 20)).isoformat() for i in range(LATENCY_SAMPLES)]
        async with httpx.AsyncClient(base_url=replicas.urls[0], headers=API, timeout=60) as http:
            aging_p95, aging_p50 = await p95_ms(http, "/v1/figures/aging", [{"as_of": d} for d in days])
            dso_p95, dso_p50 = await p95_ms(http, "/v1/figures/dso", [{"to": d} for d in days])
    finally:
        await replicas.stop()
        await engine.dispose()
    scope = f"tenant-level, {book.open_invoices:,} open invoices over 18 months, {LATENCY_SAMPLES} calls"
    return [
        Figure("insights_aging_p95_ms", aging_p95, "ms", None,
               f"aging as of one of the last 20 days; p50 {aging_p50:.0f} ms; {scope}; target < 300 ms"),
        Figure("insights_dso_p95_ms", dso_p95, "ms", None,
               f"DSO (standard, countback, best possible) over the 90 days to one of the last 20 days; "
               f"p50 {dso_p50:.0f} ms; {scope}; target < 300 ms"),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- (c) the backfill


def backfill_settings(urls: dict[str, str]) -> dict[str, str]:
    """Where insights' backfill finds the export APIs and the key it reads them with (the apply part's settings:
    `service=url` for each of the four, `tenant=key`); every service of the bench accepts TEST_API_KEYS."""
    return {
        "INSIGHTS_EXPORT_URLS": ",".join(f"{name}={url}" for name, url in urls.items()),
        "INSIGHTS_EXPORT_KEYS": f"{TENANT}=acme-api-key",
    }


PEERS = {"ledger-sync": "ledger_sync", "policy-engine": "policy_engine", "notifier": "notifier",
         "promise-tracker": "promise_tracker"}  # fmt: skip
BACKFILL_DONE = (
    "SELECT count(*) FILTER (WHERE finished_at IS NULL), count(*) FILTER (WHERE error IS NOT NULL), count(*),"
    " (SELECT count(*) FROM invoices WHERE tenant_id = :t) FROM backfills WHERE tenant_id = :t"
)


async def invoice_csv(n: int, customers: int) -> AsyncIterator[bytes]:
    yield b"id,customer_id,number,currency,total,issue_date,due_date,terms\n"
    for start in range(0, n, 5_000):
        yield "".join(
            f"INV-{k:07d},C-{k % customers:05d},N-{k:07d},EUR,{k % 9_000 + 100}.{k % 100:02d},"
            f"{TODAY - timedelta(days=k % 540)},{TODAY - timedelta(days=k % 540 - 30)},net30\n"
            for k in range(start, min(n, start + 5_000))
        ).encode()


async def quiet(processes: list[ServiceReplicas], window: float = 0.5, busy: float = 0.1) -> None:
    """Wait until the peers have digested the import (policy-engine, notifier and promise-tracker consume the
    100,000 invoice events ledger-sync published, for 10-20 s on two cores): the clock measures insights'
    backfill, not the other services' catching up (measured: 5,800 invoices/s while they ran, 14,400 after)."""
    deadline = time.perf_counter() + 300
    calm = 0
    while calm < 2 and time.perf_counter() < deadline:
        before = sum(p.cpu() for p in processes)
        await asyncio.sleep(window)  # sampling the processes' CPU over a window
        calm = calm + 1 if sum(p.cpu() for p in processes) - before < busy else 0


async def backfill(ctx: BenchContext) -> list[Figure]:
    key = "insights_backfill_invoices_per_s"
    why = missing("insights.service_layer.backfill")
    if why:
        return not_available(key, why)
    settings = importlib.import_module("insights.settings").Settings.model_fields
    unknown = [name for name in backfill_settings({}) if name.lower() not in settings]
    if unknown:
        return not_available(key, f"insights has no setting {', '.join(unknown)}: align backfill_settings()")
    n, customers = ctx.n(100_000), 2_000
    database_url = ctx.fresh_database()
    engine = make_engine(database_url, "insights", pool_size=1)
    # insights on a broker of its own: what ledger-sync publishes during the import must not reach it by the stream.
    own_broker = BrokerBackend.embedded()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(own_broker.stop)
        stack.push_async_callback(engine.dispose)
        # The whole backfill: ledger-sync's customers and invoices, and the (here empty) event exports of the others.
        peers = {}
        for name, module in PEERS.items():
            peers[name] = ServiceReplicas(
                module, 1, database_url=database_url, bootstrap_servers=ctx.broker.bootstrap_servers, env=ENV
            )
            stack.push_async_callback(peers[name].stop)
        for name, peer in peers.items():
            await peer.wait_until("/readyz", timeout=90, what=f"{name} to be ready")
        ledger = peers["ledger-sync"]
        why = await serves(ledger.urls[0], "/v1/exports/invoices")
        if why:
            return not_available(key, why)
        async with httpx.AsyncClient(base_url=ledger.urls[0], headers=API, timeout=900) as api:
            people = "id,name,email,time_zone\n" + "".join(
                f"C-{c:05d},Customer {c},ap{c}@example.test,UTC\n" for c in range(customers)
            )
            for kind, body in (("customers", people.encode()), ("invoices", invoice_csv(n, customers))):
                r = await api.post(f"/v1/imports/{kind}", content=body, headers={"content-type": "text/csv"})
                assert r.status_code == 200, r.text[:500]
        await quiet(list(peers.values()))
        urls = {name: peer.urls[0] for name, peer in peers.items()}
        insights = await insights_process(ctx, database_url, own_broker, **backfill_settings(urls))
        stack.push_async_callback(insights.stop)
        why = await serves(insights.urls[0], "/v1/backfill")
        if why:
            return not_available(key, why)
        async with httpx.AsyncClient(base_url=insights.urls[0], headers=ADMIN, timeout=60) as admin:
            cpu = [insights, ledger]
            started, cpu_started = time.perf_counter(), sum(p.cpu() for p in cpu)
            r = await admin.post("/v1/backfill")
            assert r.status_code in (200, 201, 202), f"POST /v1/backfill: {r.status_code} {r.text[:500]}"

            async def finished() -> bool:
                insights.check_alive()
                async with engine.connect() as conn:
                    running, failed, sources, invoices = (await conn.execute(text(BACKFILL_DONE), {"t": TENANT})).one()
                assert not failed, (await admin.get("/v1/backfill")).text[:1000]
                return bool(sources) and not running and invoices >= n

            try:
                await poll_until(finished, timeout=900, interval=0.1, what=f"the backfill of {n} invoices")
            except AssertionError as exc:
                status = await admin.get("/v1/backfill")
                raise AssertionError(f"{exc}; GET /v1/backfill: {status.status_code} {status.text[:1000]}") from None
            backfill_s = time.perf_counter() - started
            cpu_us = (sum(p.cpu() for p in cpu) - cpu_started) / n * 1e6
    return [
        Figure(
            key, n / backfill_s, "invoices/s", "raw_pg_batched_upsert_rows_per_s",
            f"{n} invoices (and {customers} customers) backfilled from ledger-sync's exports, with the other three "
            f"services' (empty) event exports, in {backfill_s:.1f}s (POST /v1/backfill -> every source finished), "
            f"insights + ledger-sync CPU {cpu_us:.0f} us/invoice; target >= 20,000 invoices/s",
        )
    ]  # fmt: skip


async def run(ctx: BenchContext) -> list[Figure]:
    # The figures first: the seeded million rows are the largest thing here, and nothing else runs meanwhile.
    figures = await aging_and_dso(ctx)
    figures += await apply_stream(ctx)
    figures += await backfill(ctx)
    return figures
