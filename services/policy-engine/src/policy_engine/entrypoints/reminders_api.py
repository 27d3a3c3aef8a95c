"""policy-engine API v1: a one-off reminder now, within the contact rules (tenant key; a collector in the
workspace)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse

from dunning_kit.actor import Acting
from dunning_kit.auth import Tenant
from dunning_kit.idempotency import Idempotent
from dunning_kit.problems import FieldError, invalid_input
from policy_engine.entrypoints.deps import Objects, Runtime
from policy_engine.entrypoints.reminder_schemas import ReminderIn, ReminderOut
from policy_engine.service_layer import reminders

router = APIRouter(prefix="/v1")

REFUSED = "urn:dunning:problem:contact-rule"


@router.post("/customers/{customer_id}/reminders", status_code=201, tags=["reminders"], response_model=ReminderOut,
             dependencies=[Idempotent], summary="Send a one-off reminder now, within the contact rules",
             responses={409: {"description": "A contact rule refuses it now: `errors[0].field` names the rule, "
                                             "`not_before` (when the rule ends by itself) the earliest moment"}})  # fmt: skip
async def remind_now(customer_id: str, body: ReminderIn, runtime: Runtime, objects: Objects, principal: Tenant,
                     actor: Acting) -> Any:  # fmt: skip
    """Decided now by the rules the timer applies to a due step (erasure, stopped or paused cases, a stale ledger,
    the debtor's contact window, consent, Reg F's conversation hold, the contact caps). Allowed: a
    `dunning.step.due` the notifier delivers, and a `sent` entry on each invoice's timeline naming the person; the
    case's own schedule is unchanged. Refused: 409 naming the rule, nothing written."""
    try:
        async with runtime.sessions() as session, session.begin():
            sent = await reminders.remind_now(
                session, runtime.outbox, objects.config, objects.book, principal.tenant_id, customer_id,
                invoice_ids=body.invoice_ids, channel=body.channel, template=body.template, now=runtime.clock.now(),
                actor=actor,
            )  # fmt: skip
    except reminders.UnknownCustomer:
        raise HTTPException(404, f"no customer {customer_id}") from None
    except reminders.ReminderInvalid as exc:
        return invalid_input([FieldError(field, reason, "body") for field, reason in exc.errors])
    except reminders.ReminderRefused as exc:
        extra: dict[str, Any] = {"not_before": exc.not_before.isoformat()} if exc.not_before is not None else {}
        return invalid_input([FieldError(exc.rule, exc.reason, "rule")], status=409, type=REFUSED,
                             detail=f"no reminder now: {exc.reason}", **extra)  # fmt: skip
    return JSONResponse(sent.to_json(), status_code=201)
