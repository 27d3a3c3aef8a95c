"""The fast encoder (dunning_events.fast_encoder) writes, for every event type, byte for byte what the codec writes
for the validated event: the record's value in the model's field order, and an outbox row whose columns become the
same CloudEvents headers. The hot paths (policy-engine's dunning.step.due, promise-tracker's deadline verdicts)
build their rows with it; their own tests check the values they hand it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import AwareDatetime

from dunning_events.codec import ce_headers, encode, encode_data, time_text
from dunning_events.events import EVENT_TYPES
from dunning_events.examples import example_event
from dunning_events.fast_encoder import OUTBOX_COLUMNS, FastEncoder
from dunning_events.topics import partition_key

# Instants as the hot paths meet them: whole seconds, a fraction, and (an event built elsewhere) another zone.
INSTANTS = [
    datetime(2026, 3, 11, 9, 0, tzinfo=UTC),
    datetime(2026, 3, 11, 9, 0, 0, 250_000, tzinfo=UTC),
    datetime(2026, 3, 11, 10, 0, 0, 7, tzinfo=timezone(timedelta(hours=1))),
]


def plain_values(data: Any, at: datetime) -> dict[str, Any]:
    """What a hot path hands the encoder: JSON-ready values (amounts as strings, nested parts as dicts in their
    order), instants as aware datetimes, the top-level fields in any order (here reversed)."""
    doc = data.model_dump(mode="json")
    for name, field in type(data).model_fields.items():
        if field.annotation is AwareDatetime or field.annotation == AwareDatetime | None:
            doc[name] = at
    return dict(reversed(doc.items()))


@pytest.mark.parametrize("instant", INSTANTS, ids=["utc", "fraction", "offset"])
@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_the_fast_encoder_writes_the_codecs_bytes(event_type: str, instant: datetime) -> None:
    event = example_event(event_type)
    fields = {n: instant for n, f in type(event.data).model_fields.items() if f.annotation in (AwareDatetime, AwareDatetime | None)}  # fmt: skip
    event = event.model_copy(update={"data": event.data.model_copy(update=fields)})
    encoder = FastEncoder(type(event.data), source=event.source)
    values = plain_values(event.data, instant)
    assert encoder.value(values) == encode_data(event), "byte for byte, in field order"
    in_order = dict(reversed(values.items()))  # as the hot paths build it: written as it is
    assert list(in_order) == list(type(event.data).model_fields)
    assert encoder.value(in_order) == encode_data(event)

    row = dict(
        zip(
            OUTBOX_COLUMNS,
            encoder.row(
                event_id=str(event.id), key=partition_key(event.tenant_id, event.customer_id),
                data=plain_values(event.data, instant), headers="{}", occurred_at=time_text(event.occurred_at),
                subject=event.subject, tenant_id=event.tenant_id, correlation_id=str(event.correlation_id),
            ),
            strict=True,
        )
    )  # fmt: skip
    # The relay turns the row's columns into the record's headers: the ones the codec writes for the event.
    relayed = ce_headers(
        row["event_id"], row["event_type"], row["source"], row["occurred_at"], row["subject"],
        str(row["schema_version"]), row["tenant_id"], row["correlation_id"], row["causation_id"],
    )  # fmt: skip
    assert (relayed, row["payload"], row["topic"]) == (*encode(event), event.data.topic)


def test_a_missing_field_is_an_error_not_a_shorter_event() -> None:
    event = example_event("promise.kept")
    values = event.data.model_dump(mode="json")
    del values["plan_id"]
    with pytest.raises(KeyError, match="plan_id"):
        FastEncoder(type(event.data), source="promise-tracker").value(values)
