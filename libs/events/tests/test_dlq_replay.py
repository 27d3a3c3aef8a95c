"""`python -m dunning_kit.dlq replay GROUP`: dead letters go back to their source topic with their key and headers,
once, however often the command runs."""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dunning_events import topics
from dunning_events.codec import encode
from dunning_events.topics import partition_key
from dunning_kit.dlq import read_dead_letters, replay
from dunning_kit.event_testing import envelope_of, topic_records
from dunning_kit.testing import BrokerBackend, poll_until

from .conftest import PlumbingDb
from .test_plumbing import GROUP, invoice_event, make_consumer, offsets_committed

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def topic_size(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends, starts = await consumer.end_offsets(tps), await consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()


async def run_cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dunning_kit.dlq", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return proc.returncode, out.decode() + err.decode()


async def test_replaying_dead_letters_twice_republishes_each_once_with_its_key_and_headers(
    db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer
) -> None:
    bootstrap = broker.bootstrap_servers
    poison = [invoice_event(n, customer=f"C-{n}").model_copy(update={"subject": "INV-poison"}) for n in (1, 2)]
    good = invoice_event(3)
    headers = [("traceparent", TRACEPARENT), ("dunning-priority", b"1")]
    for ev in [*poison, good]:
        key = partition_key(ev.tenant_id, ev.customer_id).encode()
        attributes, value = encode(ev)
        await producer.send_and_wait(topics.LEDGER, value, key=key, headers=[*attributes, *headers])
    consumer = make_consumer(db, broker, producer)  # fails on INV-poison: dead-letters it, applies the rest
    consumer.start()
    try:
        await poll_until(db.times_applied, what="the good event to be applied")
        await poll_until(lambda: offsets_committed(consumer), what="the batch to be committed")
    finally:
        await consumer.stop()
    dead = await read_dead_letters(bootstrap, GROUP)
    assert sorted(d.event_id or "" for d in dead.letters) == sorted(str(ev.id) for ev in poison)
    assert await topic_size(bootstrap, topics.LEDGER) == 3

    first = await replay(bootstrap, GROUP, [str(poison[0].id)])  # one event by its id
    assert [d.event_id for d in first.replayed] == [str(poison[0].id)]
    _, said = await run_cli("--bootstrap-servers", bootstrap, "replay", GROUP)  # the rest, as the runbook runs it
    assert "replayed 1, already replayed before 1" in said, said
    again = await replay(bootstrap, GROUP)  # and once more: nothing left to replay
    assert (again.replayed, len(again.already_replayed)) == ([], 2)

    assert await topic_size(bootstrap, topics.LEDGER) == 5, "each dead letter went back exactly once"
    records = await topic_records(bootstrap, topics.LEDGER, expect=5)
    for ev in poison:
        copies = [(r.key, dict(r.headers)) for r in records if envelope_of(r).id == ev.id]
        original_key = partition_key(ev.tenant_id, ev.customer_id).encode()
        # The first copy is the original, the second the replay: same key (partition), same headers (the CloudEvents
        # attributes included), no dlq-* ones.
        assert copies == [(original_key, dict([*encode(ev)[0], *headers]))] * 2, copies
