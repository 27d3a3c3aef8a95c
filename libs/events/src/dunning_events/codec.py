"""JSON codec: envelope <-> bytes, with the payload validated against its registered model."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from dunning_events.envelope import Envelope, EventData
from dunning_events.events import EVENT_TYPES


class PoisonEvent(Exception):
    """An event that can never be applied (undecodable, unknown type, invalid payload)."""


class UnknownEventType(PoisonEvent):
    pass


def encode(event: Envelope[Any]) -> bytes:
    return event.model_dump_json().encode()


def decode(raw: bytes | str) -> Envelope[EventData]:
    """Parse and validate an event; any defect raises PoisonEvent naming the field and the reason."""
    try:
        doc = orjson.loads(raw)  # several times faster than json.loads; the consumers decode every record
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonEvent(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PoisonEvent("event must be a JSON object")
    event_type = doc.get("type")
    model = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        raise UnknownEventType(f"type: unknown event type {event_type!r}")
    if doc.get("schema_version", 1) > model.schema_version:
        raise PoisonEvent(
            f"schema_version: {doc.get('schema_version')} is newer than this consumer knows "
            f"({model.schema_version}) for {event_type}"
        )
    try:
        return Envelope[model].model_validate(doc)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise PoisonEvent(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
