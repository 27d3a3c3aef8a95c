"""Producer and topic set-up shared by every service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from dunning_events.codec import encode
from dunning_events.envelope import Envelope
from dunning_events.kafka_security import PLAINTEXT, KafkaSecurity
from dunning_events.topics import ALL_TOPICS, partition_key

log = logging.getLogger("dunning.kafka")

DEFAULT_PARTITIONS = 6


async def send_event(
    producer: AIOKafkaProducer, event: Envelope[Any], headers: Sequence[tuple[str, bytes]] = ()
) -> Any:
    """Produce one event straight to its topic as the relay would (its CloudEvents record, keyed by tenant and
    customer), with `headers` (trace context, ...) after the ce_* ones: for tests and tools; services publish
    through their outbox."""
    attributes, value = encode(event)
    key = partition_key(event.tenant_id, event.data.customer_id).encode()
    return await producer.send_and_wait(event.data.topic, value, key=key, headers=[*attributes, *headers])


def make_producer(bootstrap_servers: str, client_id: str, security: KafkaSecurity = PLAINTEXT) -> AIOKafkaProducer:
    # No idempotence and no transactions: the embedded broker supports neither, and the outbox plus
    # inbox give exactly-once effect without them. acks=all keeps an acknowledged event durable on Kafka.
    return AIOKafkaProducer(
        **security.client_kwargs(),
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        max_batch_size=512 * 1024,
        request_timeout_ms=15_000,
        metadata_max_age_ms=5_000,
    )


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str] = ALL_TOPICS,
    partitions: int = DEFAULT_PARTITIONS,
    attempts: int = 30,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Create the topics if missing (in production Strimzi KafkaTopic resources own them)."""
    wanted = list(dict.fromkeys(topics))
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(
            **security.client_kwargs(), bootstrap_servers=bootstrap_servers, client_id="dunning-admin"
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                try:
                    await admin.create_topics(
                        [NewTopic(name=t, num_partitions=partitions, replication_factor=1) for t in missing]
                    )
                except TopicAlreadyExistsError:
                    pass
            return
        except Exception as exc:
            if attempt == attempts - 1:
                raise
            log.info("broker not ready for topic set-up (%s); retrying", exc)
            await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        finally:
            await admin.close()
