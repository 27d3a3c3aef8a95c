"""Durable timers: nothing lost across downtime, nothing fired twice by two replicas, poison dead-lettered."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from aiokafka import AIOKafkaProducer

from dunning_events import topics
from dunning_events.envelope import new_event
from dunning_events.kafka import send_event
from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import BrokerBackend, poll_until, wait_for_assignment

from .conftest import TENANT, EngineHarness, customer, invoice, read_topic, start_engine


async def test_a_step_whose_moment_passed_while_the_engine_was_down_fires_late_and_says_so(
    engine: EngineHarness, database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> None:
    await engine.publish(customer(), invoice("INV-1", due=engine.today + timedelta(days=3)))
    await engine.quiet()  # pre-due reminder now; the due-date notice is planned for Thursday 10:00 Berlin
    await engine.svc.stop()
    clock.advance(days=3, hours=4)  # Thursday 13:00 UTC
    engine.services[0] = await start_engine(database_url, broker, clock)
    await engine.quiet()

    steps = await engine.steps_due()
    assert [(s.step_name, s.late) for s in steps] == [("pre_due_reminder", False), ("due_date_notice", True)]
    sent = [e for e in await engine.timeline("INV-1") if e["kind"] == "sent"][-1]
    assert sent["reason"] == (
        "due_date_notice due: sent to the notifier, 4h late (planned for 2026-03-05T09:00:00+00:00; "
        "the engine was not running or behind)"
    )
    assert sent["detail"]["late"] is True


async def test_two_replicas_on_one_database_fire_each_due_step_exactly_once(
    engine: EngineHarness, database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> None:
    # A second replica with the first; small claims so both take batches of the same due moment at once.
    for s in engine.services:
        await s.stop()
    engine.services[:] = [
        await start_engine(database_url, broker, clock, timer_batch_size=25),
        await start_engine(database_url, broker, clock, timer_batch_size=25),
    ]
    await wait_for_assignment([s.runtime for s in engine.services])
    due = engine.today + timedelta(days=10)
    customers = [customer(f"C-{n}") for n in range(150)]
    invoices = [invoice(f"I-{n}", f"C-{n % 150}", due=due) for n in range(450)]
    await engine.publish(*customers, *invoices)
    await engine.quiet(timeout=60)
    for _ in range(3):  # pre-due, due-date notice, first follow-up: 1350 decisions
        await engine.next_moment("I-0")

    steps = await engine.steps_due()
    assert len(steps) == 3 * 150  # consolidated: one message per customer and step
    assert len({s.step_id for s in steps}) == len(steps)
    per_invoice_step = Counter((i.invoice_id, s.step_name) for s in steps for i in s.invoices)
    assert len(per_invoice_step) == 3 * 450 and set(per_invoice_step.values()) == {1}
    sent = Counter()
    for s in engine.services:
        async with s.client() as api:
            for n in range(0, 450, 45):
                entries = (await api.get(f"/v1/invoices/I-{n}/timeline")).json()["entries"]
                sent[f"I-{n}"] = sum(e["kind"] == "sent" for e in entries)
    assert set(sent.values()) == {3}


async def test_an_event_the_engine_cannot_interpret_is_dead_lettered_and_the_engine_goes_on(
    engine: EngineHarness,
) -> None:
    await engine.publish_raw(topics.LEDGER, b"{not json")
    bad = invoice("BAD", due=engine.today, amount="10.005")  # finer than EUR's cents: cannot be applied
    producer: AIOKafkaProducer = engine.producer
    env = new_event(bad, tenant_id=TENANT, source="test", occurred_at=engine.clock.now())
    await send_event(producer, env)
    await engine.publish(customer(), invoice("GOOD", due=engine.today + timedelta(days=3)))
    await engine.quiet()

    assert [s.invoices[0].invoice_id for s in await engine.steps_due()] == ["GOOD"]
    dlq = "dunning.dlq.policy-engine.ledger"

    async def dead_letters() -> int:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=engine.bootstrap)
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(dlq) or set()
            ends = await consumer.end_offsets([TopicPartition(dlq, p) for p in parts]) if parts else {}
            return sum(ends.values())
        finally:
            await consumer.stop()

    assert await poll_until(dead_letters, what="two dead letters") == 2
    _ = read_topic  # the DLQ holds raw bytes (one is not JSON): counted by offsets, not decoded


async def test_a_step_fired_days_later_continues_the_trace_of_the_invoice_that_opened_the_case(
    span_exporter,
    engine: EngineHarness,  # type: ignore[no-untyped-def]
) -> None:
    from dunning_events.tracing import current_trace_headers, span

    with span("erp webhook"):
        parent = current_trace_headers()
        origin = parent["traceparent"].split("-")[1]
        await engine.publish(customer(), invoice("INV-1", due=engine.today + timedelta(days=10)))
    await engine.next_moment("INV-1")

    spans = span_exporter.get_finished_spans()
    decide = [s for s in spans if s.name == "policy-engine decide pre_due_reminder"]
    assert decide and format(decide[0].context.trace_id, "032x") == origin
    raw = [r for r in await _raw_steps(engine.bootstrap) if r[0] == b"traceparent"]
    assert raw and raw[0][1].decode().split("-")[1] == origin  # the event carries the trace to the notifier


async def _raw_steps(bootstrap: str) -> list[tuple[bytes, bytes]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(topics.STEPS, p) for p in consumer.partitions_for_topic(topics.STEPS) or []]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        headers: list[tuple[bytes, bytes]] = []
        for records in (await consumer.getmany(timeout_ms=2000)).values():
            for r in records:
                headers += [(k.encode(), v) for k, v in r.headers or []]
        return headers
    finally:
        await consumer.stop()
