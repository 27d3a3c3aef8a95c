"""Prometheus metrics of the event plumbing (every service exposes them on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter("dunning_events_published_total", "Events published by the outbox relay", ["topic"])
EVENTS_CONSUMED = Counter(
    "dunning_events_consumed_total", "Events applied by a consumer group", ["group", "topic", "outcome"]
)
APPLIED_AHEAD = Counter(
    "dunning_events_applied_ahead_total",
    "Settlements a group's priority lane applied ahead of the group's backlog (the group then skips them)",
    ["group"],
)
DEAD_LETTERED = Counter("dunning_events_dead_lettered_total", "Poison events sent to a dead-letter topic", ["group"])
CONSUMER_LAG = Gauge("dunning_consumer_lag", "Records not yet applied, per group and topic", ["group", "topic"])
BATCH_SECONDS = Histogram(
    "dunning_consumer_batch_seconds",
    "Time to apply one consumed batch (one database transaction)",
    ["group"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_BACKLOG = Gauge("dunning_outbox_backlog", "Unpublished outbox rows")
OUTBOX_OLDEST_AGE = Gauge("dunning_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row")
OUTBOX_DEAD_LETTERED = Counter(
    "dunning_outbox_dead_lettered_total",
    "Outbox rows the broker refused for good (too large, invalid), moved to outbox_dead_letters",
    ["topic"],
)
