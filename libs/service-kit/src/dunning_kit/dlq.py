"""A consumer group's dead letters: list them, or replay them to the topic they came from.

    python -m dunning_kit.dlq list GROUP
    python -m dunning_kit.dlq replay GROUP [--id EVENT_ID ...]

Connects like the services do: KAFKA_BOOTSTRAP_SERVERS and the Kafka security settings (KAFKA_SECURITY_PROTOCOL,
KAFKA_SSL_*, KAFKA_SASL_*) come from the environment, so the command runs in a service's pod as it is.

`replay` reads `dunning.dlq.<GROUP>` from its start and republishes each dead letter to its source topic (the
`dlq-source-topic` header the consumer wrote) with the original key (so the same customer's partition) and the
original headers (the CloudEvents `ce_*` attributes, trace context, the settlement mark); the `dlq-*` headers stay
behind. A dead letter's event id and type are its `ce_id` and `ce_type` headers. With `--id` only the dead
letters of those event ids are replayed.

Safe to run twice: after the source topic acknowledged a replayed record, a marker goes to the dead-letter topic
itself (an empty record with `dlq-replayed: <partition>@<offset>` of the dead letter and `dlq-replayed-event-id`),
and a replay skips every dead letter that has a marker. So the dead-letter topic stays the one record of what
failed and what was replayed, and an event that fails again after its replay is dead-lettered anew (a new offset)
and can be replayed again. A crash between the republish and its marker replays that one record again, which the
consumers' inbox absorbs (every group de-duplicates by event id); two replays of one group running at the same time
can do the same. Replaying is safe for the ledger too: every consumer ignores an invoice snapshot older than the one
it has applied (dunning_events.events.supersedes), so a replayed `invoice.updated` cannot reopen a paid invoice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from dunning_events.broker_probe import probe_broker
from dunning_events.kafka import make_producer
from dunning_events.kafka_security import PLAINTEXT, KafkaAccessError, KafkaSecurity
from dunning_events.topics import dead_letter_topic
from dunning_kit.settings import KafkaClientSettings

REPLAYED = "dlq-replayed"  # on a marker: <partition>@<offset> of the dead letter it replayed
REPLAYED_EVENT_ID = "dlq-replayed-event-id"


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def position(self) -> str:
        return f"{self.partition}@{self.offset}"

    def header(self, name: str) -> str | None:
        value = next((v for k, v in self.headers if k == name), None)
        return None if value is None else value.decode(errors="replace")

    @property
    def event_id(self) -> str | None:
        """The CloudEvents id (`ce_id` header; events are CloudEvents in binary mode, dunning_events.codec)."""
        return self.header("ce_id")

    @property
    def source_topic(self) -> str | None:
        return self.header("dlq-source-topic")

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the event had on its source topic (the consumer appended the dlq-* ones)."""
        return [(k, v) for k, v in self.headers if not k.startswith("dlq-")]

    def describe(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "event_id": self.event_id,
            "type": self.header("ce_type"),
            "key": None if self.key is None else self.key.decode(errors="replace"),
            "source": f"{self.source_topic}[{self.header('dlq-source-partition')}]@{self.header('dlq-source-offset')}",
            "error": self.header("dlq-error"),
        }


@dataclass
class DeadLetters:
    letters: list[DeadLetter] = field(default_factory=list)
    replayed: set[str] = field(default_factory=set)  # positions of dead letters a marker says were replayed


@dataclass
class ReplayReport:
    replayed: list[DeadLetter] = field(default_factory=list)
    already_replayed: list[DeadLetter] = field(default_factory=list)
    no_source: list[DeadLetter] = field(default_factory=list)


async def read_dead_letters(bootstrap_servers: str, group: str, security: KafkaSecurity = PLAINTEXT) -> DeadLetters:
    """Every record of the group's dead-letter topic up to its current end, with the replay markers sorted out."""
    topic = dead_letter_topic(group)
    consumer = AIOKafkaConsumer(
        **security.client_kwargs(),
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        client_id="dunning-dlq", fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=64 * 1024 * 1024,
    )  # fmt: skip
    out = DeadLetters()
    await consumer.start()
    try:
        partitions = (await consumer.topics()) and consumer.partitions_for_topic(topic)
        if not partitions:
            return out  # nothing was ever dead-lettered by this group
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    letter = DeadLetter(r.partition, r.offset, r.key, r.value or b"", tuple(r.headers or ()))
                    marker = letter.header(REPLAYED)
                    if marker is not None:
                        out.replayed.add(marker)
                    else:
                        out.letters.append(letter)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    out.letters.sort(key=lambda d: (d.partition, d.offset))
    return out


async def replay(
    bootstrap_servers: str,
    group: str,
    event_ids: Sequence[str] = (),
    producer: AIOKafkaProducer | None = None,
    source_topic: str | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> ReplayReport:
    """Republish the group's dead letters (or those of `event_ids`) not replayed before; see the module.
    `source_topic` is where a dead letter without a `dlq-source-topic` header goes (one moved there by hand)."""
    found = await read_dead_letters(bootstrap_servers, group, security)
    wanted = set(event_ids)
    report = ReplayReport()
    own = producer is None
    if producer is None:
        producer = make_producer(bootstrap_servers, client_id="dunning-dlq-replay", security=security)
        await producer.start()
    try:
        for letter in found.letters:
            if wanted and letter.event_id not in wanted:
                continue
            if letter.position in found.replayed:
                report.already_replayed.append(letter)
                continue
            source = letter.source_topic or source_topic
            if source is None:
                report.no_source.append(letter)
                continue
            await producer.send_and_wait(source, letter.value, key=letter.key, headers=letter.original_headers)
            marker = [(REPLAYED, letter.position.encode()), (REPLAYED_EVENT_ID, (letter.event_id or "").encode())]
            await producer.send_and_wait(
                dead_letter_topic(group), b"", key=letter.key, headers=marker, partition=letter.partition
            )
            found.replayed.add(letter.position)
            report.replayed.append(letter)
    finally:
        if own:
            await producer.stop()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    try:
        kafka = KafkaClientSettings()  # the services' Kafka settings, from the same environment
    except ValidationError as exc:
        print(f"dlq: the Kafka settings are inconsistent: {exc}", file=sys.stderr)
        return 2
    security = kafka.kafka_security()
    parser = argparse.ArgumentParser(prog="python -m dunning_kit.dlq", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bootstrap-servers",
        default=kafka.kafka_bootstrap_servers,
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="print the group's dead letters (one JSON object a line)")
    listing.add_argument("group", help="consumer group, e.g. policy-engine.ledger")
    again = commands.add_parser("replay", help="republish the group's dead letters to their source topics")
    again.add_argument("group", help="consumer group, e.g. policy-engine.ledger")
    again.add_argument("--id", dest="ids", action="append", default=[], metavar="EVENT_ID", help="only this event")
    again.add_argument(
        "--source-topic", help="where dead letters without a dlq-source-topic header go (ones moved there by hand)"
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(probe_broker(args.bootstrap_servers, security))
    except KafkaAccessError as exc:
        print(f"dlq: cannot use Kafka: {exc}", file=sys.stderr)  # the cause and the setting, not a stack trace
        return 2

    if args.command == "list":
        found = asyncio.run(read_dead_letters(args.bootstrap_servers, args.group, security))
        for letter in found.letters:
            print(json.dumps({**letter.describe(), "replayed": letter.position in found.replayed}))
        return 0
    report = asyncio.run(
        replay(args.bootstrap_servers, args.group, args.ids, source_topic=args.source_topic, security=security)
    )
    for letter in report.replayed:
        print(json.dumps({"replayed": True, **letter.describe()}))
    for letter in report.no_source:
        print(json.dumps({"replayed": False, "why": "no dlq-source-topic header", **letter.describe()}))
    print(
        f"replayed {len(report.replayed)}, already replayed before {len(report.already_replayed)}, "
        f"without a source topic {len(report.no_source)}",
        file=sys.stderr,
    )
    return 1 if report.no_source else 0


if __name__ == "__main__":
    sys.exit(main())
