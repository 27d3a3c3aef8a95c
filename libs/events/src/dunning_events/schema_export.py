"""JSON Schema for every event's data and an AsyncAPI 3 document, generated from the models.

`python -m dunning_events.schema_export` (`make schemas`) rewrites the committed files; a test fails when they are
stale. Events are CloudEvents 1.0 in Kafka's binary content mode (dunning_events.codec): `<type>.json` is the schema
of the record's value (the event's data), the AsyncAPI document adds the ce_* headers, an example of every event
type, and the dead-letter topics with their dlq-* headers. `released/` holds the schemas of the last release, which
`dunning_events.compat` compares these with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dunning_events.codec import ATTRIBUTE_HEADERS, CONTENT_TYPE, CONTENT_TYPE_HEADER, SPECVERSION, encode
from dunning_events.consumer import DLQ_HEADERS
from dunning_events.events import EVENT_TYPES
from dunning_events.examples import example_event
from dunning_events.outbox import PRIORITY_HEADER
from dunning_events.topics import ALL_TOPICS, dead_letter_topic

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

# What each CloudEvents header carries (codec.ATTRIBUTE_HEADERS maps them to the envelope's fields).
_CE_HEADERS: dict[str, dict[str, Any]] = {
    "ce_specversion": {"type": "string", "const": SPECVERSION, "description": "CloudEvents specversion"},
    "ce_id": {"type": "string", "format": "uuid", "description": "Unique event id; consumers de-duplicate on it"},
    "ce_type": {"type": "string", "description": "Event type, e.g. invoice.created"},
    "ce_source": {"type": "string", "description": "The service that emitted it (a URI-reference), e.g. ledger-sync"},
    "ce_time": {
        "type": "string",
        "format": "date-time",
        "description": "Business time at which the fact became true (RFC 3339; UTC as Z)",
    },
    "ce_subject": {"type": "string", "minLength": 1, "description": "The invoice, customer, step or promise id"},
    "ce_schemaversion": {
        "type": "string",
        "pattern": "^[1-9][0-9]*$",
        "description": "Extension: the version of the data's schema (the value's JSON Schema). A consumer rejects a "
        "version newer than it knows as poison",
    },
    "ce_tenantid": {"type": "string", "minLength": 1, "description": "Extension: the tenant"},
    "ce_correlationid": {
        "type": "string",
        "format": "uuid",
        "description": "Extension: id shared by every event of one business flow",
    },
    "ce_causationid": {
        "type": "string",
        "format": "uuid",
        "description": "Extension: id of the event that caused this one (absent when none did)",
    },
    "ce_actorsub": {
        "type": "string",
        "minLength": 1,
        "description": "Extension: the subject of the person whose action made the service write it (absent when "
        "the service acted on its own; always with ce_actorname)",
    },
    "ce_actorname": {"type": "string", "minLength": 1, "description": "Extension: that person's display name"},
    CONTENT_TYPE_HEADER: {"type": "string", "const": CONTENT_TYPE, "description": "The value's media type"},
    "traceparent": {"type": "string", "description": "W3C trace context (when the write was traced)"},
    "tracestate": {"type": "string", "description": "W3C trace state"},
}
_REQUIRED_HEADERS = ["ce_specversion", *(h for h in ATTRIBUTE_HEADERS.values() if h != "ce_causationid")]
_REQUIRED_HEADERS.append(CONTENT_TYPE_HEADER)
_KAFKA_KEY = {
    "bindingVersion": "0.5.0",
    "key": {
        "type": "string",
        "description": "The partition key `tenant_id:customer_id` (`_tenant` for tenant-wide facts)",
    },
}


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of an event type's data: the record's value."""
    model = EVENT_TYPES[event_type]
    schema = model.model_json_schema(mode="serialization")
    schema["title"] = event_type
    schema["description"] = model.description
    schema["$id"] = f"urn:dunning:event:{event_type}:v{model.schema_version}"
    schema["x-schema-version"] = model.schema_version
    return schema


def _headers_of(event_type: str) -> dict[str, Any]:
    model = EVENT_TYPES[event_type]
    specific: dict[str, Any] = {
        "ce_type": {"const": event_type},
        "ce_schemaversion": {"const": str(model.schema_version)},
    }
    if model.priority:
        specific[PRIORITY_HEADER[0]] = {
            "type": "string",
            "const": PRIORITY_HEADER[1].decode(),
            "description": "A settlement: published, and applied by this platform's consumers, ahead of bulk work, "
            "never ahead of the same partition key's earlier events",
        }
    return {"allOf": [{"$ref": "#/components/schemas/CloudEventHeaders"}, {"type": "object", "properties": specific}]}


def _example(event_type: str) -> dict[str, Any]:
    event = example_event(event_type)
    headers, value = encode(event)
    shown = {k: v.decode() for k, v in headers}
    if EVENT_TYPES[event_type].priority:
        shown[PRIORITY_HEADER[0]] = PRIORITY_HEADER[1].decode()
    return {
        "name": f"{event_type} example",
        "summary": f"key {event.tenant_id}:{event.customer_id}",
        "headers": shown,
        "payload": json.loads(value),
    }


def _dead_letters() -> tuple[dict[str, Any], dict[str, Any]]:
    """The dead-letter topics: one per consumer group, the record as it came plus the dlq-* headers."""
    channel = {
        "address": dead_letter_topic("{group}"),
        "description": "A consumer group's dead letters: records it can never apply (undecodable, unknown type, "
        "invalid data, a handler's permanent error), with the record's key, value and headers as they came (the "
        "ce_* ones included) plus the dlq-* headers. `python -m dunning_kit.dlq replay GROUP` republishes them to "
        "their source topic without the dlq-* headers.",
        "parameters": {"group": {"description": "The consumer group, e.g. policy-engine.ledger"}},
        "messages": {"dead_letter": {"$ref": "#/components/messages/dead_letter"}},
    }
    dlq: dict[str, Any] = {name: {"type": "string", "description": text} for name, text in DLQ_HEADERS.items()}
    message = {
        "name": "dead_letter",
        "title": "Dead letter",
        "summary": "A record a consumer group gave up on, as it was on its source topic",
        "headers": {
            "type": "object",
            "description": "The record's own headers (its CloudEvents ones when it had them; a record without "
            "ce_type is dead-lettered too) and these",
            "properties": {**{k: {"type": "string"} for k in _CE_HEADERS}, **dlq},
            "required": list(DLQ_HEADERS),
        },
        "payload": {"description": "The record's value, byte for byte (it may not be JSON)"},
        "bindings": {"kafka": _KAFKA_KEY},
    }
    return channel, message


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        types = sorted(t for t, m in EVENT_TYPES.items() if m.topic == topic)
        channel_id = topic.replace(".", "_")
        channels[channel_id] = {
            "address": topic,
            "description": f"Partition key: `tenant_id:customer_id`. Events: {', '.join(types)}.",
            "messages": {t.replace(".", "_"): {"$ref": f"#/components/messages/{t.replace('.', '_')}"} for t in types},
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
        }
        for t in types:
            messages[t.replace(".", "_")] = {
                "name": t,
                "title": t,
                "summary": EVENT_TYPES[t].description,
                "contentType": CONTENT_TYPE,
                "headers": _headers_of(t),
                "payload": {"$ref": f"schemas/{t}.json"},
                "bindings": {"kafka": _KAFKA_KEY},
                "examples": [_example(t)],
            }
    dlq_channel, messages["dead_letter"] = _dead_letters()
    channels["dead_letters"] = dlq_channel
    operations["dead_letter"] = {"action": "send", "channel": {"$ref": "#/channels/dead_letters"}}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Dunning platform events",
            "version": "2.0.0",
            "description": "Every event is a CloudEvents 1.0 record in Kafka's binary content mode: the event's "
            "data alone is the record's value (JSON, `content-type: application/json`; money amounts are decimal "
            "strings with an ISO 4217 currency), its attributes are `ce_*` headers: id, type, source, time, subject, "
            "and the extensions schemaversion, tenantid, correlationid, causationid. The key is the partition key "
            "`tenant_id:customer_id`. A breaking change to an event's data gets a new schema version (checked "
            "against the last release by `make lint`) or a new topic.",
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {
                "CloudEventHeaders": {
                    "type": "object",
                    "description": "The record's headers (CloudEvents Kafka protocol binding, binary content mode)",
                    "properties": _CE_HEADERS,
                    "required": _REQUIRED_HEADERS,
                }
            },
        },
    }


def render_all() -> dict[str, str]:
    files = {f"{t}.json": json.dumps(event_schema(t), indent=2, sort_keys=True) + "\n" for t in sorted(EVENT_TYPES)}
    files["asyncapi.json"] = json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"
    return files


def write_all(directory: Path = SCHEMA_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.json"):
        old.unlink()
    for name, content in render_all().items():
        (directory / name).write_text(content)


if __name__ == "__main__":
    write_all()
    print(f"wrote {len(EVENT_TYPES)} event schemas and asyncapi.json to {SCHEMA_DIR}")
