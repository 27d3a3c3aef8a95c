"""The wire format: an envelope <-> a CloudEvents 1.0 Kafka record in binary content mode (headers + value).

The Kafka protocol binding of CloudEvents (github.com/cloudevents/spec, cloudevents/bindings/kafka-protocol-binding.md)
in binary content mode: the event's `data` alone is the record's value (JSON, `content-type: application/json`), and
every other attribute is one header `ce_<attribute>` whose value is the attribute's string form in UTF-8:

    ce_specversion   1.0
    ce_id            Envelope.id             (a UUID; consumers de-duplicate on it)
    ce_type          Envelope.type           (invoice.created, ...)
    ce_source        Envelope.source         (the emitting service: a URI-reference, e.g. ledger-sync)
    ce_time          Envelope.occurred_at    (RFC 3339, UTC written as Z)
    ce_subject       Envelope.subject        (the invoice, customer, step or promise id)
    ce_schemaversion Envelope.schema_version (extension: the version of the data's schema, an integer)
    ce_tenantid      Envelope.tenant_id      (extension)
    ce_correlationid Envelope.correlation_id (extension: shared by every event of one business flow)
    ce_causationid   Envelope.causation_id   (extension; absent when the event was caused by no other)

    ce_actorsub      Envelope.actor.sub      (extension; with ce_actorname, only when a person's action made it)
    ce_actorname     Envelope.actor.name     (extension: the person's display name)

Extension names are lowercase letters and digits only, as the CloudEvents spec requires. The record's key stays
the partition key `tenant_id:customer_id`; the W3C `traceparent`/`tracestate` headers and the relay's
`dunning-priority` mark travel beside these. The value is byte for byte what pydantic writes for the data model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from dunning_events.envelope import Envelope, EventData
from dunning_events.events import EVENT_TYPES

Headers = list[tuple[str, bytes]]

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
CONTENT_TYPE_HEADER = "content-type"

# The envelope's fields and the ce_* headers that carry them, in the order a record's headers are written.
ATTRIBUTE_HEADERS: dict[str, str] = {
    "id": "ce_id",
    "type": "ce_type",
    "source": "ce_source",
    "occurred_at": "ce_time",
    "subject": "ce_subject",
    "schema_version": "ce_schemaversion",
    "tenant_id": "ce_tenantid",
    "correlation_id": "ce_correlationid",
    "causation_id": "ce_causationid",
}
# The person an event was made for (dunning_events.acting): optional, both or neither.
ACTOR_HEADERS: dict[str, str] = {"sub": "ce_actorsub", "name": "ce_actorname"}
_REQUIRED = ("ce_specversion", *(h for h in ATTRIBUTE_HEADERS.values() if h != "ce_causationid"))
_SPECVERSION_HEADER = ("ce_specversion", SPECVERSION.encode())
_CONTENT_TYPE = (CONTENT_TYPE_HEADER, CONTENT_TYPE.encode())
_INSTANT = TypeAdapter(AwareDatetime)


class PoisonEvent(Exception):
    """An event that can never be applied (undecodable, unknown type, invalid payload)."""


class UnknownEventType(PoisonEvent):
    pass


def ce_headers(
    event_id: str,
    event_type: str,
    source: str,
    time: str,
    subject: str,
    schema_version: str,
    tenant_id: str,
    correlation_id: str,
    causation_id: str | None,
) -> Headers:
    """The CloudEvents headers of one record, from the attributes' string forms (the relay's hot path: no model,
    no JSON; a list, as instrumentations append to it)."""
    headers = [
        _SPECVERSION_HEADER,
        ("ce_id", event_id.encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", source.encode()),
        ("ce_time", time.encode()),
        ("ce_subject", subject.encode()),
        ("ce_schemaversion", schema_version.encode()),
        ("ce_tenantid", tenant_id.encode()),
        ("ce_correlationid", correlation_id.encode()),
    ]
    if causation_id is not None:
        headers.append(("ce_causationid", causation_id.encode()))
    headers.append(_CONTENT_TYPE)
    return headers


def time_text(at: datetime) -> str:
    """An instant as the envelope writes it and ce_time carries it (RFC 3339; UTC as Z)."""
    text: str = _INSTANT.dump_python(at, mode="json")
    return text


def attributes(event: Envelope[Any]) -> dict[str, str | None]:
    """The envelope's attributes as the ce_* headers write them (keyed by the envelope's field names)."""
    causation = event.causation_id
    return {
        "id": str(event.id),
        "type": event.type,
        "source": event.source,
        "occurred_at": time_text(event.occurred_at),
        "subject": event.subject,
        "schema_version": str(event.schema_version),
        "tenant_id": event.tenant_id,
        "correlation_id": str(event.correlation_id),
        "causation_id": None if causation is None else str(causation),
    }


def actor_attributes(event: Envelope[Any]) -> dict[str, str]:
    """The ce_actor* headers of an event made for a person (none for a service's own events)."""
    actor = event.actor
    if actor is None:
        return {}
    return {ACTOR_HEADERS["sub"]: actor.sub, ACTOR_HEADERS["name"]: actor.name}


def encode_data(event: Envelope[Any]) -> bytes:
    """The record's value: the event's data, as pydantic writes the data model (compact UTF-8 JSON)."""
    data: EventData = event.data
    return data.__pydantic_serializer__.to_json(data)


def encode(event: Envelope[Any]) -> tuple[Headers, bytes]:
    """The Kafka record of an event: its CloudEvents headers and its value."""
    a = attributes(event)
    headers = ce_headers(
        a["id"] or "",
        a["type"] or "",
        a["source"] or "",
        a["occurred_at"] or "",
        a["subject"] or "",
        a["schema_version"] or "",
        a["tenant_id"] or "",
        a["correlation_id"] or "",
        a["causation_id"],
    )
    headers.extend((k, v.encode()) for k, v in actor_attributes(event).items())
    return headers, encode_data(event)


def decode(
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None, value: bytes | str | None
) -> Envelope[EventData]:
    """Parse and validate a record (its headers, as pairs or a dict, and its value); any defect raises PoisonEvent
    naming the header or the field and the reason."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    found: dict[str, str] = {}
    for key, raw in pairs:
        if key.startswith("ce_") and raw is not None:
            try:
                found[key] = raw.decode()
            except UnicodeDecodeError as exc:
                raise PoisonEvent(f"{key}: not UTF-8: {exc}") from exc
    missing = [h for h in _REQUIRED if h not in found]
    if missing:
        if "ce_type" in missing:
            raise UnknownEventType("ce_type: missing header: not a CloudEvent of this platform")
        raise PoisonEvent("; ".join(f"{h}: missing header" for h in missing))
    if found["ce_specversion"] != SPECVERSION:
        raise PoisonEvent(f"ce_specversion: {found['ce_specversion']!r} is not CloudEvents {SPECVERSION}")
    event_type = found["ce_type"]
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise UnknownEventType(f"ce_type: unknown event type {event_type!r}")
    version = found["ce_schemaversion"]
    if not version.isdigit():
        raise PoisonEvent(f"ce_schemaversion: {version!r} is not a positive integer")
    if int(version) > model.schema_version:
        raise PoisonEvent(
            f"ce_schemaversion: {version} is newer than this consumer knows ({model.schema_version}) for {event_type}"
        )
    try:
        data = orjson.loads(value or b"")  # several times faster than json.loads; the consumers decode every record
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonEvent(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PoisonEvent("data: the record's value must be a JSON object")
    doc: dict[str, Any] = {name: found.get(header) for name, header in ATTRIBUTE_HEADERS.items()}
    if any(header in found for header in ACTOR_HEADERS.values()):
        doc["actor"] = {name: found.get(header) for name, header in ACTOR_HEADERS.items()}
    doc["data"] = data
    try:
        return Envelope[model].model_validate(doc)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise PoisonEvent(_describe(exc)) from exc


def decode_record(record: Any) -> Envelope[EventData]:
    """decode() of a consumed Kafka record (anything with `headers` and `value`)."""
    return decode(record.headers, record.value)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in ATTRIBUTE_HEADERS:
            loc[0] = ATTRIBUTE_HEADERS[loc[0]]  # an attribute is named by its header
        elif len(loc) > 1 and loc[0] == "actor" and loc[1] in ACTOR_HEADERS:
            loc = [ACTOR_HEADERS[loc[1]]]
        where = ".".join(loc) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
