"""The event plumbing on the real broker and real PostgreSQL: inbox, outbox relay, dead letters, tracing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events import topics
from dunning_events.codec import encode
from dunning_events.consumer import BatchConsumer, ConsumedEvent, one_by_one
from dunning_events.envelope import Envelope, new_event
from dunning_events.events import InvoiceCreated
from dunning_events.inbox import Inbox, prune_inbox
from dunning_events.outbox import OutboxRelay, OutboxWriter
from dunning_events.topics import partition_key
from dunning_events.tracing import child_trace_headers, current_trace_headers, span
from dunning_kit.event_testing import envelope_of, topic_records
from dunning_kit.testing import TEST_SESSION_TIMEOUT_MS, BrokerBackend, poll_until

from .conftest import PlumbingDb, applied, inbox, outbox

GROUP = "plumbing-test"


def invoice_event(n: int, customer: str = "C-1") -> Envelope[InvoiceCreated]:
    return new_event(
        InvoiceCreated(
            customer_id=customer,
            invoice_id=f"INV-{n}",
            number=f"{n:04d}",
            currency="EUR",
            total=Decimal("100.00"),
            balance=Decimal("100.00"),
            issue_date=date(2026, 3, 1),
            due_date=date(2026, 3, 31),
        ),
        tenant_id="acme",
        source="test",
        occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
    )


async def count_effect(session: AsyncSession, ev: ConsumedEvent) -> None:
    if ev.envelope.subject == "INV-poison":
        raise ValueError("this invoice cannot be applied")
    stmt = insert(applied).values(subject=ev.envelope.subject, times=1)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[applied.c.subject], set_={"times": applied.c.times + 1})
    )


def make_consumer(db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer) -> BatchConsumer:
    return BatchConsumer(
        group=GROUP,
        topics=[topics.LEDGER],
        bootstrap_servers=broker.bootstrap_servers,
        session_factory=db.sessions,
        inbox=Inbox(inbox, GROUP),
        handler=one_by_one(GROUP, count_effect),
        producer=producer,
        max_records=100,
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
    )


async def publish(producer: AIOKafkaProducer, *events: Envelope[InvoiceCreated]) -> None:
    for ev in events:
        headers, value = encode(ev)
        await producer.send_and_wait(
            topics.LEDGER, value, key=partition_key(ev.tenant_id, ev.customer_id).encode(), headers=headers
        )


async def test_a_redelivered_event_changes_nothing(
    db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer
) -> None:
    consumer = make_consumer(db, broker, producer)
    # Crash between the DB commit and the offset commit: the batch is read again.
    crashes = {"left": 1}

    async def crash_once() -> None:
        if crashes["left"]:
            crashes["left"] -= 1
            raise ConnectionError("simulated crash before the offset commit")

    consumer.after_db_commit_hook = crash_once
    consumer.start()
    try:
        first = invoice_event(1)
        await publish(producer, first, invoice_event(2))
        await poll_until(lambda: offsets_committed(consumer), what="offsets committed after the retry")
        await publish(producer, first)  # the broker redelivers the same event id
        await poll_until(lambda: offsets_committed(consumer), what="the duplicate to be consumed")
    finally:
        await consumer.stop()
    assert crashes["left"] == 0, "the crash was injected"
    assert await db.times_applied() == {"INV-1": 1, "INV-2": 1}


async def offsets_committed(consumer: BatchConsumer) -> bool:
    return await consumer.lag() == 0


async def test_outbox_rows_survive_a_relay_crash_after_publish(
    db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer
) -> None:
    events = [invoice_event(n) for n in range(5)]
    async with db.sessions() as session, session.begin():
        await OutboxWriter(outbox).add(session, events)

    crashing = OutboxRelay(engine=db.engine, table=outbox, producer=producer)

    async def crash(_published: int) -> None:
        raise RuntimeError("relay killed after the broker acknowledged, before marking rows")

    crashing.after_publish_hook = crash
    with pytest.raises(RuntimeError):
        await crashing.publish_batch()
    assert await db.unpublished() == 5, "nothing was marked published"

    recovered = OutboxRelay(engine=db.engine, table=outbox, producer=producer)
    assert await recovered.publish_batch() == 5
    assert await db.unpublished() == 0

    seen = await topic_records(broker.bootstrap_servers, topics.LEDGER, expect=10)
    ids = [envelope_of(r).id for r in seen]
    assert sorted(set(ids)) == sorted(e.id for e in events), "every event arrived (duplicates allowed)"
    assert len(ids) == 10, "the crashed batch was published twice, not lost"


async def test_two_relays_never_publish_concurrently_and_keep_order(
    db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer
) -> None:
    events = [invoice_event(n) for n in range(300)]
    async with db.sessions() as session, session.begin():
        await OutboxWriter(outbox).add(session, events)
    relays = [OutboxRelay(engine=db.engine, table=outbox, producer=producer, batch_size=50) for _ in range(2)]

    async def drain(relay: OutboxRelay) -> int:
        total = 0
        while (n := await relay.publish_batch()) or await db.unpublished():
            total += n
            await asyncio.sleep(0)
        return total

    published = await asyncio.gather(*(drain(r) for r in relays))
    assert sum(published) == 300
    seen = await topic_records(broker.bootstrap_servers, topics.LEDGER, expect=300)
    order = [envelope_of(r).subject for r in seen]
    assert order == [e.subject for e in events], "one customer's events keep their commit order"


async def test_a_poison_event_is_dead_lettered_and_the_next_one_still_applies(
    db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer
) -> None:
    consumer = make_consumer(db, broker, producer)
    consumer.start()
    try:
        key = b"acme:C-1"
        attributes, _ = encode(invoice_event(9))  # a CloudEvent's headers around values that are not its data
        await producer.send_and_wait(topics.LEDGER, b"{not json", key=key, headers=attributes)
        await producer.send_and_wait(topics.LEDGER, b"{}", key=key, headers=attributes)
        await publish(producer, invoice_event(0).model_copy(update={"subject": "INV-poison"}))
        # Not a CloudEvent of this platform: no ce_type header (the value alone is a valid event's data).
        headers, value = encode(invoice_event(8))
        await producer.send_and_wait(
            topics.LEDGER, value, key=key, headers=[(k, v) for k, v in headers if k != "ce_type"]
        )
        await publish(producer, invoice_event(7))
        await poll_until(db.times_applied, what="the good event to be applied")
        await poll_until(lambda: offsets_committed(consumer), what="the batch to be committed")
    finally:
        await consumer.stop()
    assert await db.times_applied() == {"INV-7": 1}
    dead = [
        dict(r.headers)
        for r in await topic_records(broker.bootstrap_servers, topics.dead_letter_topic(GROUP), expect=4)
    ]
    errors = [h["dlq-error"].decode() for h in dead]
    assert "not JSON" in errors[0]
    assert "data.customer_id" in errors[1] and "Field required" in errors[1]
    # Undecodable records are set aside as the batch is read, before the handler fails on one.
    assert errors[2] == "ce_type: missing header: not a CloudEvent of this platform"
    assert "cannot be applied" in errors[3]
    assert all(h["dlq-source-topic"] == topics.LEDGER.encode() for h in dead)
    # A dead letter keeps the record's CloudEvents headers (what a replay republishes) beside the dlq-* ones.
    assert "ce_type" not in dead[2] and dead[2]["ce_id"] == headers[1][1]
    assert dead[3]["ce_subject"] == b"INV-poison" and dead[3]["ce_type"] == b"invoice.created"


async def test_trace_context_travels_from_the_writer_to_the_consumer_span(
    db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer, span_exporter
) -> None:
    with span("POST /v1/invoices") as api_span:
        async with db.sessions() as session, session.begin():
            await OutboxWriter(outbox).add(session, [invoice_event(9)])
    await OutboxRelay(engine=db.engine, table=outbox, producer=producer).publish_batch()
    consumer = make_consumer(db, broker, producer)
    consumer.start()
    try:
        await poll_until(db.times_applied, what="the event to be applied")
    finally:
        await consumer.stop()
    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    consume = spans[f"{GROUP} process invoice.created"]
    assert consume.context.trace_id == api_span.get_span_context().trace_id
    assert consume.parent is not None and consume.parent.span_id == api_span.get_span_context().span_id


def test_child_trace_headers_continue_the_stored_trace_with_a_new_span(span_exporter) -> None:
    with span("invoice arrives") as origin:
        stored = current_trace_headers()
    headers = child_trace_headers("policy-engine decide first_reminder", stored, **{"dunning.step_id": "S-1"})
    child = next(s for s in span_exporter.get_finished_spans() if s.name == "policy-engine decide first_reminder")
    origin_ctx = origin.get_span_context()
    assert child.context.trace_id == origin_ctx.trace_id
    assert child.parent is not None and child.parent.span_id == origin_ctx.span_id
    assert child.attributes["dunning.step_id"] == "S-1"
    assert headers["traceparent"].startswith(f"00-{origin_ctx.trace_id:032x}-{child.context.span_id:016x}-")
    # A record without a stored trace starts a new one rather than failing.
    fresh = child_trace_headers("policy-engine decide due_date_notice", None)
    assert fresh["traceparent"].split("-")[1] != f"{origin_ctx.trace_id:032x}"


async def test_pruning_forgets_only_event_ids_older_than_the_retention(db: PlumbingDb) -> None:
    group = Inbox(inbox, GROUP)
    old = [uuid.uuid4() for _ in range(25)]
    recent = [uuid.uuid4() for _ in range(5)]
    async with db.sessions() as session, session.begin():
        await group.claim(session, old + recent)
        await session.execute(
            text("UPDATE inbox SET processed_at = now() - interval '15 days' WHERE event_id = ANY(:ids)"),
            {"ids": old},
        )
    assert await prune_inbox(db.engine, inbox, timedelta(days=14), chunk=10) == 25  # three chunks
    async with db.sessions() as session, session.begin():
        assert await group.claim(session, recent) == set(), "recent ids still de-duplicate"
        assert await group.claim(session, old[:1]) == {old[0]}, "a forgotten id would be applied again"


async def test_the_relay_keeps_the_producers_partition_and_each_customers_order(
    db: PlumbingDb, broker: BrokerBackend
) -> None:
    # A small record-batch limit, so partitions' batches fill up and are split mid-relay-batch.
    small = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, max_batch_size=4096, linger_ms=2)
    await small.start()
    try:
        customers = [f"C-{c}" for c in range(12)]
        events = [invoice_event(n, customer=customers[n % len(customers)]) for n in range(240)]
        async with db.sessions() as session, session.begin():
            await OutboxWriter(outbox).add(session, events)
        relay = OutboxRelay(engine=db.engine, table=outbox, producer=small, batch_size=100)
        while await relay.publish_batch():
            pass
        # Where the producer's own send() puts each customer's key:
        expected = {
            c: (await small.send_and_wait(topics.LEDGER, b"probe", key=partition_key("acme", c).encode())).partition
            for c in customers
        }
    finally:
        await small.stop()
    seen: dict[str, list[tuple[int, str]]] = {}
    for r in await topic_records(broker.bootstrap_servers, topics.LEDGER, expect=len(events) + len(customers)):
        if r.value != b"probe":
            ev = envelope_of(r)
            seen.setdefault(ev.customer_id, []).append((r.partition, ev.subject))
    for c in customers:
        assert {p for p, _ in seen[c]} == {expected[c]}, f"{c} stays on the partition send() picks"
        assert [s for _, s in seen[c]] == [e.subject for e in events if e.customer_id == c], f"{c} in commit order"


async def test_a_relayed_record_is_a_cloudevent_in_binary_mode(
    db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer, span_exporter: object
) -> None:
    """On the wire: the data alone as the value, every attribute a ce_* header (extensions for tenant,
    correlation, causation and the schema's version), the W3C trace context beside them, the key as before."""
    cause = invoice_event(1)
    event = new_event(
        cause.data, tenant_id="acme", source="ledger-sync", occurred_at=cause.occurred_at, caused_by=cause
    )
    with span("POST /v1/invoices"):
        async with db.sessions() as session, session.begin():
            await OutboxWriter(outbox).add(session, [event])
    await OutboxRelay(engine=db.engine, table=outbox, producer=producer).publish_batch()
    [record] = await topic_records(broker.bootstrap_servers, topics.LEDGER, expect=1)
    value, headers = record.value, dict(record.headers)
    assert value == event.data.model_dump_json().encode(), "the data alone, as pydantic writes it"
    traceparent = headers.pop("traceparent")
    assert traceparent.startswith(b"00-")
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": str(event.id).encode(),
        "ce_type": b"invoice.created",
        "ce_source": b"ledger-sync",
        "ce_time": b"2026-03-01T00:00:00Z",
        "ce_subject": b"INV-1",
        "ce_schemaversion": b"1",
        "ce_tenantid": b"acme",
        "ce_correlationid": str(cause.correlation_id).encode(),
        "ce_causationid": str(cause.id).encode(),
        "content-type": b"application/json",
    }
    assert envelope_of(record) == event
