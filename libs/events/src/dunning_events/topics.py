"""Topic names and the partition key every topic uses."""

from __future__ import annotations

LEDGER = "dunning.ledger.v1"
STEPS = "dunning.steps.v1"
NOTIFICATIONS = "dunning.notifications.v1"
PROMISES = "dunning.promises.v1"

ALL_TOPICS: tuple[str, ...] = (LEDGER, STEPS, NOTIFICATIONS, PROMISES)


def dead_letter_topic(consumer_group: str) -> str:
    """One dead-letter topic per consumer group, so one bad consumer never hides another's poison."""
    return f"dunning.dlq.{consumer_group}"


def partition_key(tenant_id: str, customer_id: str) -> str:
    """All events of one customer share a partition, so a payment never overtakes its invoice."""
    return f"{tenant_id}:{customer_id}"
