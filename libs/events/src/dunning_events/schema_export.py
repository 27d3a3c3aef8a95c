"""JSON Schema for every event and an AsyncAPI 3 document, generated from the models.

`python -m dunning_events.schema_export` rewrites the committed files; a test fails when they are stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dunning_events.envelope import Envelope
from dunning_events.events import EVENT_TYPES
from dunning_events.outbox import PRIORITY_HEADER
from dunning_events.topics import ALL_TOPICS

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def event_schema(event_type: str) -> dict[str, Any]:
    model = EVENT_TYPES[event_type]
    schema = Envelope[model].model_json_schema(mode="serialization")  # type: ignore[valid-type]
    schema["title"] = event_type
    schema["description"] = model.description
    schema["$id"] = f"urn:dunning:event:{event_type}:v{model.schema_version}"
    props = schema["properties"]
    props["type"] = {"const": event_type, "type": "string"}
    props["schema_version"] = {"const": model.schema_version, "type": "integer"}
    return schema


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
            headers: dict[str, Any] = {
                "traceparent": {"type": "string", "description": "W3C trace context"},
                "tracestate": {"type": "string"},
            }
            if EVENT_TYPES[t].priority:
                headers[PRIORITY_HEADER[0]] = {
                    "type": "string",
                    "const": PRIORITY_HEADER[1].decode(),
                    "description": "A settlement: published, and applied by this platform's consumers, ahead of "
                    "bulk work, never ahead of the same partition key's earlier events",
                }
            messages[t.replace(".", "_")] = {
                "name": t,
                "title": t,
                "summary": EVENT_TYPES[t].description,
                "contentType": "application/json",
                "headers": {"type": "object", "properties": headers},
                "payload": {"$ref": f"schemas/{t}.json"},
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Dunning platform events",
            "version": "1.0.0",
            "description": "Every event travels in one envelope (id, type, schema_version, source, occurred_at, "
            "tenant_id, subject, correlation_id, causation_id, data). Money amounts are decimal strings "
            "with an ISO 4217 currency. A breaking change gets a new schema_version or a new topic.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
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
