"""The policy engine alone on real PostgreSQL and a real broker, driven by events and a simulated clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dunning_events import topics
from dunning_events.codec import decode_record
from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    Allocation,
    ConsentFlags,
    CustomerUpserted,
    InvoiceCreated,
    PaymentApplied,
)
from dunning_events.kafka import send_event
from dunning_events.tracing import current_trace_headers, to_kafka_headers
from dunning_kit.clock import SimulatedClock
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, RunningService, start_service, wait_until_quiet

TENANT = "acme"


@dataclass
class EngineHarness:
    services: list[RunningService]
    clock: SimulatedClock
    producer: AIOKafkaProducer
    bootstrap: str
    database_url: str
    _seq: int = 0
    published: list[Envelope[Any]] = field(default_factory=list)

    @property
    def svc(self) -> RunningService:
        return self.services[0]

    @property
    def today(self) -> date:
        return self.clock.now().date()

    async def publish(self, *datas: EventData, tenant: str = TENANT) -> list[Envelope[Any]]:
        out = []
        for data in datas:
            env = new_event(data, tenant_id=tenant, source="test", occurred_at=self.clock.now())
            # As the outbox relay does: the CloudEvents record with the trace context.
            await send_event(self.producer, env, headers=to_kafka_headers(current_trace_headers()))
            out.append(env)
        self.published.extend(out)
        return out

    async def publish_raw(self, topic: str, raw: bytes, key: str = f"{TENANT}:C-1") -> None:
        await self.producer.send_and_wait(topic, raw, key=key.encode())

    async def quiet(self, timeout: float = 30) -> None:
        await wait_until_quiet([s.runtime for s in self.services], timeout=timeout)

    async def advance(self, **delta: float) -> None:
        await self.quiet()
        self.clock.advance(timedelta(**delta))
        await self.quiet()

    async def advance_to(self, instant: datetime) -> None:
        await self.quiet()
        self.clock.set(instant)
        await self.quiet()

    async def run_until_idle(self, invoice_id: str, max_steps: int = 50) -> None:
        """Move the clock to each moment the case's timer is set for (as a real clock would pass it)."""
        await self.quiet()
        for _ in range(max_steps):
            state = await self.state(invoice_id)
            if state["next_at"] is None:
                return
            at = datetime.fromisoformat(state["next_at"])
            if at > self.clock.now():
                self.clock.set(at)
            await self.quiet()
        raise AssertionError(f"{invoice_id} still has a step pending after {max_steps} moves")

    async def next_moment(self, invoice_id: str) -> None:
        """Move the clock to the moment the case's timer is set for, and let it fire."""
        await self.quiet()
        state = await self.state(invoice_id)
        assert state["next_at"] is not None, state
        at = datetime.fromisoformat(state["next_at"])
        if at > self.clock.now():
            self.clock.set(at)
        await self.quiet()

    def api(self, key: str | None = "acme-api-key") -> Any:
        return self.svc.client(key)

    async def timeline(self, invoice_id: str, tenant_key: str = "acme-api-key") -> list[dict[str, Any]]:
        async with self.api(tenant_key) as api:
            r = await api.get(f"/v1/invoices/{invoice_id}/timeline")
            assert r.status_code == 200, r.text
            return r.json()["entries"]  # type: ignore[no-any-return]

    async def kinds(self, invoice_id: str) -> list[str]:
        return [e["kind"] for e in await self.timeline(invoice_id)]

    async def state(self, invoice_id: str) -> dict[str, Any]:
        async with self.api() as api:
            r = await api.get(f"/v1/invoices/{invoice_id}/dunning")
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

    async def events(self, topic: str = topics.STEPS, type_: str | None = None) -> list[Envelope[Any]]:
        """Everything on a topic right now (read from the start, without a consumer group)."""
        return [e for e in await read_topic(self.bootstrap, topic) if type_ is None or e.type == type_]

    async def steps_due(self) -> list[Any]:
        return [e.data for e in await self.events(type_="dunning.step.due")]

    async def cancelled(self) -> list[Any]:
        return [e.data for e in await self.events(type_="dunning.step.cancelled")]


async def read_topic(bootstrap: str, topic: str) -> list[Envelope[Any]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer.topics()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[int, Envelope[Any]]] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    out.append((r.timestamp, decode_record(r)))
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        out.sort(key=lambda x: x[0])
        return [e for _, e in out]
    finally:
        await consumer.stop()


async def start_engine(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock, **overrides: Any
) -> RunningService:
    return await start_service(
        spec("policy-engine"),
        database_url=database_url,
        bootstrap_servers=broker.bootstrap_servers,
        clock=clock,
        overrides=overrides or None,
    )


@pytest_asyncio.fixture
async def engine(database_url: str, broker: BrokerBackend, clock: SimulatedClock) -> AsyncIterator[EngineHarness]:
    svc = await start_engine(database_url, broker, clock)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    harness = EngineHarness([svc], clock, producer, broker.bootstrap_servers, database_url)
    try:
        yield harness
    finally:
        await producer.stop()
        for s in harness.services:
            await s.stop()


# ---------------------------------------------------------------- event builders


def customer(
    cid: str = "C-1",
    *,
    time_zone: str = "Europe/Berlin",
    country: str | None = "DE",
    sms: bool = False,
    voice: bool = False,
    segment: str | None = None,
    tags: list[str] | None = None,
) -> CustomerUpserted:
    return CustomerUpserted(
        customer_id=cid, name=f"Customer {cid}", time_zone=time_zone, country=country, segment=segment,
        tags=tags or [], consent=ConsentFlags(sms=sms, voice=voice),
    )  # fmt: skip


def invoice(
    iid: str,
    cid: str = "C-1",
    *,
    due: date | None,
    amount: str = "1000.00",
    balance: str | None = None,
    currency: str = "EUR",
    issue: date | None = None,
    disputed: bool = False,
) -> InvoiceCreated:
    return InvoiceCreated(
        customer_id=cid, invoice_id=iid, number=f"N-{iid}", currency=currency, total=Decimal(amount),
        balance=Decimal(balance if balance is not None else amount), issue_date=issue or date(2026, 2, 1),
        due_date=due, disputed=disputed,
    )  # fmt: skip


def payment(
    iid: str, amount: str, balance_after: str, cid: str = "C-1", currency: str = "EUR", pid: str | None = None
) -> PaymentApplied:
    status = "paid" if Decimal(balance_after) == 0 else "open"
    return PaymentApplied(
        customer_id=cid, payment_id=pid or f"PAY-{uuid.uuid4().hex[:8]}", currency=currency, amount=Decimal(amount),
        received_on=date(2026, 3, 2),
        allocations=[Allocation(invoice_id=iid, amount=Decimal(amount), invoice_balance_after=Decimal(balance_after),
                                invoice_status_after=status)],  # type: ignore[arg-type]
        unapplied=Decimal(0),
    )  # fmt: skip
