"""policy-engine API v1: hand-offs to collections waiting for a person, and their completion (tenant key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from dunning_events.envelope import new_event
from dunning_events.events import DunningHandOffCompleted, HandOffOutcome
from dunning_kit.actor import Acting
from dunning_kit.auth import Tenant
from dunning_kit.idempotency import Idempotent
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, Limit, Page
from policy_engine.adapters import repository as repo
from policy_engine.entrypoints.deps import Runtime
from policy_engine.service_layer import handoffs
from policy_engine.service_layer.handlers import SOURCE

router = APIRouter(prefix="/v1")


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: HandOffOutcome = Field(description="What was done with the file")
    note: str | None = Field(None, max_length=2000, description="Free text for the timeline (cut on erasure)")


class Person(BaseModel):
    sub: str
    name: str


class HandOffOut(BaseModel):
    invoice_id: str
    customer_id: str
    balance: str
    currency: str
    handed_off_at: str | None = Field(description="When the step that handed the debt off went out")
    policy_id: str | None
    step: str | None = Field(description="The step that handed it off")
    acknowledged_at: str | None
    acknowledged_by: Person | None
    outcome: HandOffOutcome | None


@router.get("/hand-offs", tags=["hand-offs"], response_model=Page[HandOffOut], description=PAGE_CONTRACT,
            summary="Cases handed off to collections, oldest first: waiting for a person, or acknowledged")  # fmt: skip
async def list_hand_offs(
    runtime: Runtime, principal: Tenant, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    acknowledged: bool = Query(False, description="true: the ones a person completed; false: the ones waiting"),
) -> Any:  # fmt: skip
    async with runtime.sessions() as session:
        return await handoffs.hand_offs_page(
            await repo.driver(session), principal.tenant_id, acknowledged=acknowledged, limit=limit, cursor=cursor
        )


@router.post("/hand-offs/{invoice_id}/acknowledge", tags=["hand-offs"], response_model=HandOffOut,
             dependencies=[Idempotent], summary="Complete a hand-off with what was done with the file")  # fmt: skip
async def acknowledge(invoice_id: str, body: AcknowledgeIn, runtime: Runtime, principal: Tenant, actor: Acting) -> Any:
    """A timeline entry naming the person and a `dunning.hand_off.completed` event (its envelope names them too);
    a second acknowledgement is 409, a case not handed off 404."""
    now = runtime.clock.now()
    try:
        async with runtime.sessions() as session, session.begin():
            done = await handoffs.acknowledge(
                await repo.driver(session), principal.tenant_id, invoice_id, body.outcome,
                (body.note or "").strip() or None, actor, now,
            )  # fmt: skip
            completed = DunningHandOffCompleted(
                customer_id=done["customer_id"], invoice_id=invoice_id, outcome=body.outcome
            )
            await runtime.outbox.add(session, [new_event(completed, tenant_id=principal.tenant_id, source=SOURCE,
                                                         occurred_at=now)])  # fmt: skip
            return done
    except handoffs.NotHandedOff:
        raise HTTPException(404, f"invoice {invoice_id} is not handed off to collections") from None
    except handoffs.AlreadyAcknowledged:
        raise HTTPException(409, f"the hand-off of invoice {invoice_id} is already completed") from None
