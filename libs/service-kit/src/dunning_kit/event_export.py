"""The events export: `GET /v1/exports/events`, every event a service published, oldest first, for a read model
that backfills what the topics (30 days) no longer hold.

Each item is the event as CloudEvents-structured JSON, exactly `Envelope.model_dump(mode="json")` (the envelope's
attributes and its `data`), so `Envelope[...]` / the codec parse it back to the event that was published. The
source is the event archive (published rows the outbox let go, kept EVENT_ARCHIVE_DAYS) together with the
outbox's published rows: the prune moves a row from one to the other in one statement, so one page's query sees
each event once; the walk is keyset by the outbox id, which both keep.

What a walk guarantees: every event published before it began is served once, in id order, whatever is written
or pruned meanwhile. An event still unpublished when the walk passes its id (the priority lane may publish a
later settlement first) is not served by that walk: it is on the topic, where the stream that follows a backfill
finds it (consumers de-duplicate by event id). Only events of the key's tenant are served; `type` filters.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime, BaseModel, Field

from dunning_events.acting import EventActor
from dunning_events.bulk import raw_connection
from dunning_events.events import EVENT_TYPES
from dunning_kit.auth import Tenant
from dunning_kit.dependencies import runtime_of
from dunning_kit.pages import DEFAULT_EXPORT_LIMIT, EXPORT_PAGE_CONTRACT, Cursor, CursorCodec, ExportLimit
from dunning_kit.problems import FieldError, InvalidInput
from dunning_kit.runtime import ServiceRuntime

Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]

# The envelope's attributes as stored (tables._event_row): written back in Envelope's field order, with the data
# (the record's value, pydantic's JSON of the data model) embedded as it is.
_COLUMNS = (
    "id, event_id::text AS event_id, event_type, schema_version, source, occurred_at, tenant_id, subject, "
    "correlation_id::text AS correlation_id, causation_id::text AS causation_id, payload, "
    # The person an event was made for travels as the ce_actor* headers the row keeps (dunning_events.acting).
    "headers->>'ce_actorsub' AS actor_sub, headers->>'ce_actorname' AS actor_name"
)
_FILTER = "tenant_id = $1 AND id > $2 AND ($3::text[] IS NULL OR event_type = ANY($3::text[]))"
# Each side ordered and limited by itself (the archive by its (tenant_id, id) index, the outbox, an hour of rows,
# by its primary key), then merged: one statement, one snapshot.
_PAGE_SQL = f"""
(SELECT {_COLUMNS} FROM {{archive}} WHERE {_FILTER} ORDER BY id LIMIT $4)
UNION ALL
(SELECT {_COLUMNS} FROM {{outbox}} WHERE published_at IS NOT NULL AND {_FILTER} ORDER BY id LIMIT $4)
ORDER BY id LIMIT $4
"""


class ExportedEvent(BaseModel):
    """One published event: the envelope's attributes and its data (`dunning_events.envelope.Envelope`)."""

    id: uuid.UUID = Field(description="Unique event id; consumers de-duplicate on it")
    type: str = Field(description="Event type, e.g. invoice.created (the catalogue: the AsyncAPI document)")
    schema_version: int
    source: str = Field(description="The service that emitted it")
    occurred_at: AwareDatetime = Field(description="Business time at which the fact became true")
    tenant_id: str
    subject: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    actor: EventActor | None = Field(
        description="The person whose action made the service write it (null: the service acted on its own)"
    )
    data: dict[str, Any] = Field(description="The event's data, as the schema of its `type` describes it")


class ExportedEventPage(BaseModel):
    items: list[ExportedEvent]
    next_cursor: str | None = Field(description="Pass it back as `cursor` for the next page; null on the last page")


ARCHIVE_TABLE = "event_archive"  # dunning_events.tables.event_archive_table, added by plumbing_tables
_CONTRACT = (
    'Items are CloudEvents-structured JSON envelopes (`Envelope.model_dump(mode="json")`: the attributes and '
    "`data`), the key's tenant's only, keyset by the outbox id: every event published before the walk began is "
    "served once whatever is written meanwhile; one still unpublished when the walk passes its id is left to the "
    "topic (de-duplicate by `id`). Events are kept EVENT_ARCHIVE_DAYS."
)

router = APIRouter(prefix="/v1", tags=["exports"])


@router.get(
    "/exports/events",
    response_model=ExportedEventPage,
    summary="Every event this service published (archive and outbox), oldest first, for a read model's backfill",
    description=EXPORT_PAGE_CONTRACT + " " + _CONTRACT,
)
async def export_events(
    principal: Tenant,
    runtime: Runtime,
    event_type: Annotated[
        list[str] | None,
        Query(alias="type", description="Only events of these types (repeat it: `type=a&type=b`)"),
    ] = None,
    limit: ExportLimit = DEFAULT_EXPORT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    types = _known_types(event_type)
    codec = CursorCodec(f"{runtime.name}.events")
    position = codec.decode(cursor, 1)
    after = position[0] if position is not None else 0
    outbox = runtime.outbox_table
    sql = _PAGE_SQL.format(archive=outbox.metadata.tables[ARCHIVE_TABLE].name, outbox=outbox.name)
    async with runtime.engine.connect() as conn:
        apg = await raw_connection(conn, in_transaction=False)  # one statement: its own snapshot
        rows = await apg.fetch(sql, principal.tenant_id, after, types, limit + 1)
    served = rows[:limit]
    next_cursor = codec.encode((served[-1]["id"],)) if len(rows) > limit else None
    body = {"items": [_item(r) for r in served], "next_cursor": next_cursor}
    # The data is embedded as stored (no parse, no validation): a page of 5,000 events costs one dumps.
    return Response(orjson.dumps(body), media_type="application/json")


def _known_types(requested: list[str] | None) -> list[str] | None:
    if not requested:
        return None
    unknown = sorted(set(requested) - EVENT_TYPES.keys())
    if unknown:
        raise InvalidInput(
            [FieldError("query.type", f"unknown event type {', '.join(map(repr, unknown))}", "query")],
            detail="not an event type of the catalogue",
        )
    return sorted(set(requested))


def _item(row: Any) -> dict[str, Any]:
    """The row as `Envelope.model_dump(mode="json")` writes the event (the same keys, in the same order)."""
    return {
        "id": row["event_id"],
        "type": row["event_type"],
        "schema_version": row["schema_version"],
        "source": row["source"],
        "occurred_at": row["occurred_at"],
        "tenant_id": row["tenant_id"],
        "subject": row["subject"],
        "correlation_id": row["correlation_id"],
        "causation_id": row["causation_id"],
        "actor": None if row["actor_sub"] is None else {"sub": row["actor_sub"], "name": row["actor_name"]},
        "data": orjson.Fragment(row["payload"]),
    }
