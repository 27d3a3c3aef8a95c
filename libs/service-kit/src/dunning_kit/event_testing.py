"""What tests put on the broker and read back from it: one reader of topics (every partition from the beginning,
no consumer group) and one feed that produces events as the services' outbox relays do, with a ledger-sync
stand-in that keeps invoice balances. Used by the tests and the benches only; imports nothing from pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from dunning_events.codec import Headers, decode_record, encode
from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    Allocation,
    CreditNoteApplied,
    CustomerUpserted,
    InvoiceCreated,
    InvoiceVoided,
    PaymentApplied,
    PaymentReversed,
)
from dunning_events.kafka_security import PLAINTEXT, KafkaSecurity
from dunning_events.topics import partition_key
from dunning_events.tracing import current_trace_headers, to_kafka_headers
from dunning_kit.clock import Clock
from dunning_kit.testing import RunningService, poll_until

# ---------------------------------------------------------------- reading


def envelope_of(record: ConsumerRecord[Any, Any]) -> Envelope[EventData]:
    """The event a record read off a topic carries (CloudEvents binary mode: ce_* headers, the data as the value):
    the one place tests decode the wire format."""
    return decode_record(record)


class TopicReader:
    """Every record on a topic from the beginning, read in the background (no consumer group): `raw` as read,
    undecodable ones included, `events` decoded (envelope_of)."""

    def __init__(self, consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]) -> None:
        self.consumer = consumer
        self.partitions = list(partitions)
        self.events: list[Envelope[EventData]] = []
        self.raw: list[ConsumerRecord[Any, Any]] = []
        self._next_offset: dict[TopicPartition, int] = {}
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            for tp, records in batches.items():
                for record in records:
                    self.raw.append(record)
                    with contextlib.suppress(Exception):
                        self.events.append(envelope_of(record))
                if records:
                    self._next_offset[tp] = records[-1].offset + 1

    def of_type(self, event_type: str) -> list[Envelope[Any]]:
        return [e for e in self.events if e.type == event_type]

    async def wait_for(self, event_type: str, count: int = 1, timeout: float = 20) -> list[Envelope[Any]]:
        async def enough() -> list[Envelope[Any]]:
            found = self.of_type(event_type)
            return found if len(found) >= count else []

        return await poll_until(enough, timeout=timeout, what=f"{count} x {event_type}")

    @property
    def ids(self) -> list[uuid.UUID]:
        """The ids of the events read so far, in the order read."""
        return [e.id for e in self.events]

    async def has(self, *events: Envelope[Any]) -> bool:
        """Every one of these events has been read (a `poll_until` check)."""
        return {e.id for e in events} <= set(self.ids)

    async def caught_up(self, *, expect: int = 0, timeout: float = 20) -> None:
        """Wait until everything on the topic when this is called has been read, and at least `expect` records."""
        ends = await self.consumer.end_offsets(self.partitions)

        async def read_all() -> bool:
            done = all(self._next_offset.get(tp, 0) >= end for tp, end in ends.items() if end)
            return done and len(self.raw) >= expect

        await poll_until(read_all, timeout=timeout, what=f"the records on {self.partitions[0].topic}")

    def in_order(self) -> list[ConsumerRecord[Any, Any]]:
        """The records read, each partition in offset order and the partitions merged by the time of each record."""
        by_partition: dict[int, list[ConsumerRecord[Any, Any]]] = {}
        for record in self.raw:
            by_partition.setdefault(record.partition, []).append(record)
        return list(heapq.merge(*by_partition.values(), key=lambda r: r.timestamp))

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()


async def read_topic(
    bootstrap_servers: str, topic: str, security: KafkaSecurity = PLAINTEXT, **consumer_options: Any
) -> TopicReader:
    """A reader of `topic` from its beginning, running until `stop()`; waits for the topic to exist."""
    consumer = AIOKafkaConsumer(
        **security.client_kwargs(), bootstrap_servers=bootstrap_servers, enable_auto_commit=False, **consumer_options
    )
    await consumer.start()

    async def partitions() -> set[int]:
        await consumer._client.force_metadata_update()
        return set(consumer.partitions_for_topic(topic) or ())

    parts = await poll_until(partitions, timeout=20, what=f"partitions of {topic}")
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return TopicReader(consumer, tps)


OpenReader = Callable[[str], Awaitable[TopicReader]]  # the `topic_reader` fixture: a reader of the named topic


async def topic_records(
    bootstrap_servers: str, topic: str, *, expect: int = 0, security: KafkaSecurity = PLAINTEXT
) -> list[ConsumerRecord[Any, Any]]:
    """Every record on `topic` right now (and at least `expect`, waited for), each partition in offset order,
    the partitions merged by the time of each record."""
    reader = await read_topic(bootstrap_servers, topic, security)
    try:
        await reader.caught_up(expect=expect)
        return reader.in_order()
    finally:
        await reader.stop()


async def topic_events(
    bootstrap_servers: str, topic: str, *, expect: int = 0, security: KafkaSecurity = PLAINTEXT
) -> list[Envelope[EventData]]:
    """The events on `topic` right now, in the order of topic_records (undecodable records left out)."""
    out: list[Envelope[EventData]] = []
    for record in await topic_records(bootstrap_servers, topic, expect=expect, security=security):
        with contextlib.suppress(Exception):
            out.append(envelope_of(record))
    return out


async def assert_exported(service: RunningService, published: Sequence[Envelope[Any]], tenant_key: str,
                          other_tenant_key: str) -> None:  # fmt: skip
    """Each event a service published (as read from its topic) comes back from its GET /v1/exports/events as the
    same event (id, type, occurred_at, data: the envelope parsed from the item equals it), served from the outbox
    and again once the prune moved it to the event archive; another tenant's key never sees it."""
    assert published, "nothing to look for"
    wanted = {str(e.id): e for e in published}
    types = sorted({e.type for e in published})
    for where in ("outbox", "archive"):
        if where == "archive":
            moved, _ = await service.runtime.relay.prune_published(timedelta(0))
            assert moved >= len(published), f"the prune moved {moved} rows"
        async with service.client(tenant_key) as api, service.client(other_tenant_key) as other:
            items = await _export_items(api, types)
            found = {i["id"]: i for i in items if i["id"] in wanted}
            assert set(found) == set(wanted), f"from the {where}: {set(wanted) - set(found)} missing"
            for event_id, item in found.items():
                event = wanted[event_id]
                assert item == event.model_dump(mode="json"), where
                assert type(event).model_validate(item) == event  # Envelope[ItsData], as the topic's reader parsed it
            assert not {i["id"] for i in await _export_items(other, types)} & set(wanted), "another tenant's events"


async def _export_items(api: Any, types: Sequence[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await api.get(
            "/v1/exports/events", params={"type": list(types), **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        if (cursor := response.json()["next_cursor"]) is None:
            return items


# ---------------------------------------------------------------- producing


class EventFeed:
    """Produces event data of one tenant to the broker as a service's outbox relay does: in an envelope stamped
    by the test's clock, on the data's topic, keyed `tenant:customer`; the service's tests build the data."""

    def __init__(self, producer: AIOKafkaProducer, clock: Clock, tenant_id: str = "acme", source: str = "test") -> None:
        self.producer = producer
        self.clock = clock
        self.tenant_id = tenant_id
        self.source = source
        self.published: list[Envelope[Any]] = []
        # The last event as sent (its CloudEvents headers and value), for tests that send it again.
        self.last_raw: tuple[Headers, bytes] = ([], b"")

    async def publish(
        self, *data: EventData, tenant_id: str | None = None, occurred_at: datetime | None = None, traced: bool = False
    ) -> list[Envelope[Any]]:
        """`traced`: with the current trace context in the headers, as the relay sends it.

        The events go out together (queued, then awaited), so those of one partition travel in one produce batch
        and a consumer meets them in one fetch, as it meets what the relay publishes together: a test that
        publishes two invoices of one customer sees them in one consumer batch, not split by how fast it sent."""
        tenant = tenant_id or self.tenant_id
        out: list[Envelope[Any]] = []
        sent = []
        for d in data:
            env = new_event(d, tenant_id=tenant, source=self.source, occurred_at=occurred_at or self.clock.now())
            self.last_raw = attributes, value = encode(env)
            sent.append(
                await self.producer.send(
                    d.topic,
                    value=value,
                    key=partition_key(tenant, d.customer_id).encode(),
                    headers=[*attributes, *(to_kafka_headers(current_trace_headers()) if traced else [])],
                )
            )
            out.append(env)
        for delivery in sent:
            await delivery
        self.published.extend(out)
        return out

    async def send_raw(
        self, topic: str, value: bytes, key: bytes, headers: Sequence[tuple[str, bytes]] | None = None
    ) -> None:
        """A record as given (a malformed one, or an event sent again with its headers)."""
        await self.producer.send_and_wait(topic, value=value, key=key, headers=list(headers) if headers else None)

    async def aclose(self) -> None:
        await self.producer.stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


async def start_producer(bootstrap_servers: str, security: KafkaSecurity = PLAINTEXT) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        **security.client_kwargs(), bootstrap_servers=bootstrap_servers, enable_idempotence=False, linger_ms=1
    )
    await producer.start()
    return producer


class LedgerFeed(EventFeed):
    """Plays ledger-sync: produces its events and keeps the invoice balances to fill them in."""

    def __init__(self, producer: AIOKafkaProducer, clock: Clock, tenant: str = "acme") -> None:
        super().__init__(producer, clock, tenant, source="ledger-sync")
        self.balances: dict[str, Decimal] = {}
        self.invoice_meta: dict[str, tuple[str, str]] = {}  # invoice -> (customer, currency)

    @property
    def tenant(self) -> str:
        return self.tenant_id

    @property
    def last_sent(self) -> Envelope[Any]:
        return self.published[-1]

    async def send(self, data: EventData, occurred_at: datetime | None = None) -> Envelope[EventData]:
        (env,) = await self.publish(data, occurred_at=occurred_at)
        return env

    async def customer(self, customer_id: str, time_zone: str = "UTC", name: str | None = None) -> None:
        await self.send(
            CustomerUpserted(customer_id=customer_id, name=name or f"Customer {customer_id}", time_zone=time_zone)
        )

    async def invoice(
        self, invoice_id: str, customer_id: str, total: str, currency: str = "EUR", due_in_days: int = -5
    ) -> None:
        today = self.clock.now().date()
        self.balances[invoice_id] = Decimal(total)
        self.invoice_meta[invoice_id] = (customer_id, currency)
        await self.send(
            InvoiceCreated(
                customer_id=customer_id, invoice_id=invoice_id, number=invoice_id.removeprefix("INV-"),
                currency=currency, total=Decimal(total), balance=Decimal(total), issue_date=today - timedelta(days=30),
                due_date=today + timedelta(days=due_in_days),
            )
        )  # fmt: skip

    def _settle(self, parts: list[tuple[str, str]], sign: int = 1) -> tuple[list[Allocation], Decimal]:
        """(invoice, amount) parts applied to the balances (`sign` -1 takes them back): the allocations and their
        total."""
        out = []
        for invoice_id, amount in parts:
            self.balances[invoice_id] = self.balances.get(invoice_id, Decimal(0)) - sign * Decimal(amount)
            after = self.balances[invoice_id]
            out.append(
                Allocation(
                    invoice_id=invoice_id, amount=Decimal(amount), invoice_balance_after=after,
                    invoice_status_after="paid" if after <= 0 else "open",
                )
            )  # fmt: skip
        return out, sum((Decimal(a) for _, a in parts), Decimal(0))

    async def payment(
        self,
        payment_id: str,
        customer_id: str,
        parts: list[tuple[str, str]],
        currency: str = "EUR",
        received_on: date | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        allocations, total = self._settle(parts)
        await self.send(
            PaymentApplied(
                customer_id=customer_id, payment_id=payment_id, currency=currency, amount=total,
                received_on=received_on or self.clock.now().date(), allocations=allocations, unapplied=Decimal(0),
            ),
            occurred_at,
        )  # fmt: skip

    async def credit_note(
        self, credit_note_id: str, customer_id: str, parts: list[tuple[str, str]], currency: str = "EUR"
    ) -> None:
        allocations, total = self._settle(parts)
        await self.send(
            CreditNoteApplied(
                customer_id=customer_id, credit_note_id=credit_note_id, currency=currency, total=total,
                issued_on=self.clock.now().date(), allocations=allocations,
            )
        )  # fmt: skip

    async def reversal(
        self, payment_id: str, customer_id: str, parts: list[tuple[str, str]], currency: str = "EUR"
    ) -> None:
        allocations, total = self._settle(parts, sign=-1)
        await self.send(
            PaymentReversed(
                customer_id=customer_id, payment_id=payment_id, currency=currency, amount=total, reason="chargeback",
                allocations=allocations,
            )
        )  # fmt: skip

    async def void(self, invoice_id: str) -> None:
        customer_id, currency = self.invoice_meta[invoice_id]
        today = self.clock.now().date()
        await self.send(
            InvoiceVoided(
                customer_id=customer_id, invoice_id=invoice_id, number=invoice_id.removeprefix("INV-"),
                currency=currency, total=self.balances[invoice_id], balance=Decimal(0), issue_date=today,
                status="void",
            )
        )  # fmt: skip
