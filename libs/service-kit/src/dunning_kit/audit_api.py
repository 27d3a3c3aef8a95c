"""GET /v1/audit-log: who changed what through this service (dunning_kit.audit_log), newest first, admin only.

The workspace's audit page reads it from every service. Filters: `person` (the identity provider's subject),
`since` / `until` (the service's clock, [since, until)); a cursor page like every list of the platform.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select

from dunning_kit.auth import Admin
from dunning_kit.dependencies import runtime_of
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, CursorCodec, Limit, Page
from dunning_kit.runtime import ServiceRuntime

Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]
CURSOR = CursorCodec("audit-log")

router = APIRouter(prefix="/v1", tags=["audit"])


class AuditPerson(BaseModel):
    sub: str = Field(description="The identity provider's subject of the person")
    name: str
    email: str
    role: str = Field(description="The person's workspace role when they acted")


class AuditEntry(BaseModel):
    id: int
    at: AwareDatetime = Field(description="When the call was made (the service's clock)")
    actor: AuditPerson
    method: str
    route: str = Field(description="The route's path template, e.g. /v1/customers/{customer_id}/dunning-block")
    path: str
    targets: dict[str, str] = Field(description="The ids in the path, by the route's parameter names")
    outcome: str = Field(description="applied (written with the change), refused (4xx) or failed (5xx)")
    status: int | None = Field(description="The answer's status; null on an applied call (written before it)")


@router.get("/audit-log", response_model=Page[AuditEntry], description=PAGE_CONTRACT,
            summary="Changes made through this service on behalf of a person, newest first (admin)")  # fmt: skip
async def audit_log(
    runtime: Runtime,
    principal: Admin,
    person: Annotated[str | None, Query(max_length=255, description="Only this person's calls (subject)")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Calls at or after this instant")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Calls before this instant")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Any:
    audit = runtime.audit_log
    if audit is None:  # the router is only mounted on a service that keeps the log
        raise RuntimeError(f"{runtime.name} keeps no audit log")
    t = audit.table
    query = select(t).where(t.c.tenant_id == principal.tenant_id).order_by(t.c.id.desc()).limit(limit + 1)
    position = CURSOR.decode(cursor, 1)
    if position is not None:
        query = query.where(t.c.id < position[0])
    if person is not None:
        query = query.where(t.c.actor_sub == person)
    if since is not None:
        query = query.where(t.c.at >= since)
    if until is not None:
        query = query.where(t.c.at < until)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return CURSOR.page(rows, limit, lambda r: (r.id,), _entry)


def _entry(r: Any) -> AuditEntry:
    at: datetime = r.at
    return AuditEntry(
        id=r.id, at=at,
        actor=AuditPerson(sub=r.actor_sub, name=r.actor_name, email=r.actor_email, role=r.actor_role),
        method=r.method, route=r.route, path=r.path, targets=r.targets, outcome=r.outcome, status=r.status,
    )  # fmt: skip
