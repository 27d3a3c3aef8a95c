"""Outbox rows of events built without pydantic, for the hot paths that write thousands of events a second.

Validating data a service has just read from its own rows costs more than the rest of a policy decision or a
promise check; these paths hand plain values (already in their JSON form: amounts as the currency's decimal
strings, instants as pydantic writes them or aware datetimes) to a `FastEncoder`, which writes the record's value
in the model's field order, byte for byte what `codec.encode_data` writes for the validated event
(libs/events/tests/test_fast_encoder.py holds the two together for every event type).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from operator import itemgetter
from typing import Any

import orjson
from pydantic import BaseModel

from dunning_events.envelope import EventData

# The outbox's columns as every writer fills them (tables._event_row): COPY and unnest inserts name them in this order.
OUTBOX_COLUMNS = (
    "event_id", "event_type", "topic", "key", "payload", "headers",
    "source", "occurred_at", "subject", "schema_version", "tenant_id", "correlation_id", "causation_id",
)  # fmt: skip

# orjson writes an aware datetime as pydantic does (microseconds only when non-zero) once told to write UTC as Z.
_DUMPS_OPTIONS = orjson.OPT_UTC_Z


@cache
def fields_of(model: type[BaseModel]) -> tuple[str, ...]:
    """The model's fields in declaration order: the order pydantic writes them in."""
    return tuple(model.model_fields)


@cache
def _picker(model: type[BaseModel]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    # zip over an itemgetter's tuple: a third of a dict comprehension's cost, which the hot paths pay per event.
    fields = fields_of(model)
    get = itemgetter(*fields)
    if len(fields) == 1:
        return lambda values: {fields[0]: get(values)}
    return lambda values: dict(zip(fields, get(values), strict=True))


def ordered(model: type[BaseModel], values: Mapping[str, Any]) -> Mapping[str, Any]:
    """A nested part (an invoice line, a fee, an amount) in its model's field order (as it is if already so)."""
    return values if tuple(values) == fields_of(model) else _picker(model)(values)


class FastEncoder:
    """One event type's records from plain values: its value in the model's field order, and its outbox row."""

    __slots__ = ("_pick", "event_type", "fields", "schema_version", "source", "topic")

    def __init__(self, model: type[EventData], source: str) -> None:
        self.event_type = model.event_type
        self.topic = model.topic
        self.schema_version = model.schema_version
        self.fields = fields_of(model)
        self.source = source
        self._pick = _picker(model)

    def value(self, data: Mapping[str, Any]) -> bytes:
        """The record's value: `data`'s fields in the model's order (every field named, nested parts `ordered`)."""
        if tuple(data) != self.fields:  # a dict already in the model's order (the hot paths) is written as it is
            data = self._pick(data)
        return orjson.dumps(data, option=_DUMPS_OPTIONS)

    def row(
        self,
        *,
        event_id: Any,
        key: str,
        data: Mapping[str, Any],
        headers: str,
        occurred_at: str,
        subject: str,
        tenant_id: str,
        correlation_id: Any,
        causation_id: Any = None,
    ) -> tuple[Any, ...]:
        """One outbox row (OUTBOX_COLUMNS); ids may be UUIDs or their strings, `headers` the trace headers' JSON,
        `occurred_at` the instant as the envelope writes it."""
        return (
            event_id, self.event_type, self.topic, key, self.value(data), headers,
            self.source, occurred_at, subject, self.schema_version, tenant_id, correlation_id, causation_id,
        )  # fmt: skip
