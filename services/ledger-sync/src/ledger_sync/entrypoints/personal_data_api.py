"""A customer's personal data across the platform (admin scope): one export document, one erasure.

`GET` answers the ledger's own piece and every peer's (PERSONAL_DATA_PEERS) as one document; a peer that fails
fails the export (502/503 naming it), never a silently partial one. `DELETE` erases in the ledger and tells the
other services by `customer.erased` (they apply it from the broker, hence 202).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dunning_kit.auth import Admin
from dunning_kit.personal_data import PersonalDataExport
from dunning_kit.problems import Problem
from ledger_sync.adapters.personal_data_peers import PeerFailure, fetch_pieces, parse_peers
from ledger_sync.domain.personal_data import customer_id_problem
from ledger_sync.entrypoints.deps import Runtime
from ledger_sync.entrypoints.problems import error
from ledger_sync.service_layer.personal_data import SERVICE, CustomerPersonalData

router = APIRouter(prefix="/v1/customers", tags=["personal data"])

PEER_UNAVAILABLE = "urn:dunning:problem:personal-data-peer-unavailable"


class PersonalDataDocument(BaseModel):
    customer_id: str
    tenant_id: str
    generated_at: datetime = Field(description="When the export was made (the service clock)")
    services: dict[str, PersonalDataExport] = Field(description="Each service's piece, by service name")


class ErasureOut(BaseModel):
    customer_id: str
    erased_at: datetime = Field(description="When the erasure was made (the first one, on a repeated request)")
    pseudonym: str = Field(description="The name every service shows for the customer from now on")


RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"description": "The key is not admin-scoped"},
    404: {"description": "No such customer for this tenant"},
    422: {"description": "The customer id cannot name a customer (`errors[].field` = `customer_id`)"},
}


def _invalid(customer_id: str) -> JSONResponse | None:
    reason = customer_id_problem(customer_id)
    return error(422, "validation failed", "customer_id", reason) if reason else None


def _unknown(customer_id: str) -> JSONResponse:
    return error(404, "not found", "customer_id", f"no customer {customer_id!r}")


@router.get("/{customer_id}/personal-data", response_model=PersonalDataDocument,
            responses={**RESPONSES, 502: {"description": "A peer answered wrongly (named in `peer`)"},
                       503: {"description": "A peer could not be reached (named in `peer`)"}},
            summary="Everything the platform holds about one customer, from all four services (GDPR Art. 15)")  # fmt: skip
async def export_personal_data(customer_id: str, principal: Admin, request: Request, runtime: Runtime) -> Any:
    if (invalid := _invalid(customer_id)) is not None:
        return invalid
    settings = runtime.settings
    async with runtime.sessions() as session:
        own = await CustomerPersonalData(session, principal.tenant_id).export(customer_id)
    if own is None:
        return _unknown(customer_id)
    try:
        peers = await fetch_pieces(
            parse_peers(settings.personal_data_peers), customer_id, request.headers.get("authorization", ""),
            timeout_s=settings.personal_data_peer_timeout_s,
        )  # fmt: skip
    except PeerFailure as exc:
        raise Problem(
            exc.status, "Bad Gateway" if exc.status == 502 else "Service Unavailable",
            f"the export needs every service's piece and {exc.peer} gave none: {exc.reason}",
            type=PEER_UNAVAILABLE, peer=exc.peer,
        ) from None  # fmt: skip
    return PersonalDataDocument(
        customer_id=customer_id,
        tenant_id=principal.tenant_id,
        generated_at=runtime.clock.now(),
        services={
            SERVICE: PersonalDataExport(**own),
            **{name: PersonalDataExport(**piece) for name, piece in peers.items()},
        },
    )


@router.delete("/{customer_id}/personal-data", response_model=ErasureOut, status_code=202, responses=RESPONSES,
               summary="Erase the customer's personal data in every service (GDPR Art. 17); money facts are kept")  # fmt: skip
async def erase_personal_data(customer_id: str, principal: Admin, runtime: Runtime) -> Any:
    if (invalid := _invalid(customer_id)) is not None:
        return invalid
    async with runtime.sessions() as session, session.begin():
        erasure = await CustomerPersonalData(session, principal.tenant_id).erase(
            customer_id, runtime.outbox, runtime.clock
        )
    if erasure is None:
        return _unknown(customer_id)
    return JSONResponse(erasure.answer(), status_code=202)
