"""policy-engine API v1: notes on a customer's case (tenant key; the person from Dunning-Actor)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dunning_kit.actor import Acting
from dunning_kit.auth import Tenant
from dunning_kit.idempotency import Idempotent
from dunning_kit.problems import FieldError, invalid_input
from policy_engine.adapters import repository as repo
from policy_engine.entrypoints.deps import Runtime
from policy_engine.service_layer import notes, queries
from policy_engine.service_layer.handlers import Engine

router = APIRouter(prefix="/v1")


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=notes.NOTE_MAX, description="The note (not blank)")
    invoice_ids: list[str] | None = Field(
        None, max_length=500, description="The invoices it is about (their timelines); left out: the customer's"
    )


class NoteAuthor(BaseModel):
    sub: str
    name: str


class NoteOut(BaseModel):
    note_id: str
    customer_id: str
    invoice_ids: list[str]
    text: str
    at: str
    by: NoteAuthor | None = Field(description="The person who wrote it (Dunning-Actor); null for an API key alone")


@router.post("/customers/{customer_id}/notes", status_code=201, tags=["notes"], response_model=NoteOut,
             dependencies=[Idempotent], summary="Write a note on the customer's case (its timeline)")  # fmt: skip
async def add_note(customer_id: str, body: NoteIn, runtime: Runtime, principal: Tenant, actor: Acting) -> Any:
    """A timeline entry of kind `note` naming the person; on erasure of the customer the text is cut."""
    objects = runtime.objects
    async with runtime.sessions() as session, session.begin():
        if not await queries.customer_known(await repo.driver(session), principal.tenant_id, customer_id):
            raise HTTPException(404, f"no customer {customer_id}")
        engine = Engine(session, runtime.outbox, runtime.clock, objects.config, objects.book).acting_for(actor)
        try:
            note = await notes.add_note(engine, principal.tenant_id, customer_id, body.text, body.invoice_ids)
        except notes.NoteRefused as exc:
            return invalid_input([FieldError(field, reason, "body") for field, reason in exc.errors])
    return JSONResponse(note.to_json(), status_code=201)
