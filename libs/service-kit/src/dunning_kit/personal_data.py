"""The personal-data export every service offers (GDPR Art. 15): one document shape and one admin route.

`GET /v1/customers/{customer_id}/personal-data` answers
`{"service": <name>, "customer_id": ..., "erased": bool, "data": {<section>: [records]}}` with everything the
service holds about that person, 200 with empty sections when it holds nothing (a customer unknown to one
service may well be known to another; ledger-sync's same path aggregates the four documents).

Each service only says how to collect its sections (`Collect`); the route, the admin scope and the record
shaping (instants as ISO 8601, UUIDs and Decimals as strings) live here once. So do two pieces of erasure
(GDPR Art. 17) every service needs: dropping the outbox's published copies of the customer's events, and the
check that no value is left anywhere in a service's tables.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import Executable, LargeBinary, MetaData, Table, Text, bindparam, delete, func, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from dunning_events.topics import partition_key
from dunning_kit.auth import Admin
from dunning_kit.dependencies import runtime_of
from dunning_kit.idempotency import TABLE as IDEMPOTENCY_TABLE

# The section name, then its records: one list per kind of thing held (customer projection, cases, deliveries...).
Sections = dict[str, list[dict[str, Any]]]


@dataclass
class PersonalData:
    """What one service holds about one customer."""

    erased: bool = False
    sections: Sections = field(default_factory=dict)


# (runtime, tenant_id, customer_id) -> what the service holds; the runtime is the service's ServiceRuntime.
Collect = Callable[[Any, str, str], Awaitable[PersonalData]]


class PersonalDataExport(BaseModel):
    service: str = Field(description="The service that holds the data")
    customer_id: str
    erased: bool = Field(description="True once customer.erased was applied: the sections then hold no personal data")
    data: Sections = Field(description="Everything the service holds about the customer, one list per kind of record")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def record(row: Mapping[Any, Any], json_columns: Iterable[str] = ()) -> dict[str, Any]:
    """A database row (asyncpg Record or SQLAlchemy mapping) as a JSON-ready record; `json_columns` are
    columns read as JSON text (asyncpg without a codec) to be decoded."""
    decoded = set(json_columns)
    out: dict[str, Any] = {}
    for key, value in row.items():  # items(): iterating an asyncpg Record yields its values, not its keys
        if key in decoded and isinstance(value, str):
            value = json.loads(value)
        out[key] = _plain(value)
    return out


async def records(session: AsyncSession, query: Executable) -> list[dict[str, Any]]:
    """The rows of a SQLAlchemy query as JSON-ready records (JSONB columns arrive decoded)."""
    return [record(row) for row in (await session.execute(query)).mappings().all()]


def personal_data_router(service: str, collect: Collect) -> APIRouter:
    """The export route of `service` (admin scope: what it returns is everything about a person)."""
    router = APIRouter(prefix="/v1", tags=["personal data"])

    @router.get(
        "/customers/{customer_id}/personal-data",
        response_model=PersonalDataExport,
        summary="Everything this service holds about one customer (GDPR Art. 15); admin scope",
    )
    async def export_personal_data(customer_id: str, principal: Admin, request: Request) -> PersonalDataExport:
        found = await collect(runtime_of(request), principal.tenant_id, customer_id)
        return PersonalDataExport(service=service, customer_id=customer_id, erased=found.erased, data=found.sections)

    return router


async def forget_published_events(session: AsyncSession, outbox: Table, tenant_id: str, customer_id: str) -> int:
    """customer.erased: drop the outbox's copies of the customer's events that are already on the broker (the
    relay keeps them a while; they may quote a note or a reason), and the event archive's (kept for the events
    export). Unpublished ones still go out: they are facts other services must apply. What the broker itself
    retains is its topics' retention (see the README).
    The stored answers of Idempotency-Keys that mention the customer go too (forget_idempotent_answers)."""
    key = partition_key(tenant_id, customer_id)
    result = await session.execute(delete(outbox).where(outbox.c.key == key, outbox.c.published_at.isnot(None)))
    removed = int(getattr(result, "rowcount", 0) or 0)
    archive = outbox.metadata.tables.get("event_archive")
    if archive is not None:
        archived = await session.execute(delete(archive).where(archive.c.key == key))
        removed += int(getattr(archived, "rowcount", 0) or 0)
    await forget_idempotent_answers(session, outbox.metadata, tenant_id, customer_id)
    return removed


async def forget_idempotent_answers(session: AsyncSession, metadata: MetaData, tenant_id: str, customer_id: str) -> int:
    """customer.erased: drop the stored answers (dunning_kit.idempotency) that mention the customer, searched
    as `tables_mentioning` searches; a retry with such a key within its TTL is then a new request."""
    keys = metadata.tables.get(IDEMPOTENCY_TABLE)
    if keys is None:
        return 0
    result = await session.execute(
        delete(keys).where(keys.c.tenant_id == tenant_id, func.strpos(keys.c.response.cast(Text), customer_id) > 0)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def tables_mentioning(session: AsyncSession, metadata: MetaData, needle: str) -> dict[str, int]:
    """Where a value still appears in a service's tables (each row searched as text, JSON included, and every
    binary column as UTF-8 bytes, like the outbox's event payloads), by table: the check an erasure must pass
    (tests, and an operator who wants to see for themselves)."""
    found: dict[str, int] = {}
    for name, tbl in metadata.tables.items():
        binary = [c.name for c in tbl.columns if isinstance(c.type, LargeBinary)]
        where = " OR ".join(["strpos(t::text, :needle) > 0", *(f"position(:raw IN t.{col}) > 0" for col in binary)])
        params: list[BindParameter[Any]] = [bindparam("needle", needle)]
        if binary:
            params.append(bindparam("raw", needle.encode(), type_=LargeBinary))
        count = await session.scalar(text(f"SELECT count(*) FROM {name} AS t WHERE {where}").bindparams(*params))
        if count:
            found[name] = int(count)
    return found
