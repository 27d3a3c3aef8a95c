"""policy-engine API v1: the call log - a collector's telephone call with the debtor (tenant key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse

from dunning_kit.actor import Acting
from dunning_kit.auth import Tenant
from dunning_kit.idempotency import Idempotent
from dunning_kit.problems import FieldError, invalid_input
from policy_engine.entrypoints.call_schemas import CallIn, CallOut
from policy_engine.entrypoints.deps import Runtime
from policy_engine.service_layer import calls

router = APIRouter(prefix="/v1")


@router.post("/customers/{customer_id}/calls", status_code=201, tags=["calls"], response_model=CallOut,
             dependencies=[Idempotent], summary="Log a telephone call with the debtor")  # fmt: skip
async def log_call(customer_id: str, body: CallIn, runtime: Runtime, principal: Tenant, actor: Acting) -> Any:
    """The call lands on the timeline of each debt it was about, counts as a call attempt for the contact caps, and
    a conversation holds every call about those debts for 7 days (`dunning.step.held`, rule `conversation`)."""
    try:
        async with runtime.sessions() as session, session.begin():
            call = await calls.log_call(
                session, runtime.outbox, principal.tenant_id, customer_id, outcome=body.outcome,
                invoice_ids=body.invoice_ids, at=body.at, note=body.note, now=runtime.clock.now(),
                actor_name=actor.name if actor is not None else None,
            )  # fmt: skip
    except calls.UnknownCustomer:
        raise HTTPException(404, f"no customer {customer_id}") from None
    except calls.CallRefused as exc:
        return invalid_input([FieldError(field, reason, "body") for field, reason in exc.errors])
    return JSONResponse(call.to_json(), status_code=201)
