"""The dead letters of a service's consumer groups over HTTP, for the tenant's admins (the workspace's operations
page): `GET /v1/dead-letters` lists each group's dead letters with the error that sent them there, and
`POST /v1/dead-letters/{group}/replay` sends them back to their source topic (dunning_kit.dlq: each once, however
often it is asked; the consumers de-duplicate by event id, so a replay is idempotent end to end).

The dead-letter topics are shared by every tenant: an admin key sees and replays only dead letters whose
CloudEvents `ce_tenantid` is its tenant. A record whose tenant cannot be read (not an event at all) is counted as
`unattributed` and left to the platform's operators (`python -m dunning_kit.dlq`), never replayed from here.
Mounted by create_service_app in every service that consumes a topic.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from dunning_kit.auth import Admin
from dunning_kit.dependencies import runtime_of
from dunning_kit.dlq import DeadLetter, read_dead_letters, replay
from dunning_kit.problems import FieldError, InvalidInput
from dunning_kit.runtime import ServiceRuntime

Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]

router = APIRouter(prefix="/v1/dead-letters", tags=["operations"])

# What one answer lists per group at most (the oldest first); a longer backlog says `truncated`.
MAX_LISTED = 500


class DeadLetterOut(BaseModel):
    position: str = Field(description="partition@offset in the group's dead-letter topic")
    event_id: str | None
    type: str | None = Field(description="The event type (CloudEvents `ce_type`)")
    key: str | None = Field(description="The partition key (tenant:customer)")
    source: str = Field(description="topic[partition]@offset it was consumed from")
    error: str | None = Field(description="Why the consumer could not apply it")
    replayed: bool = Field(description="Sent back to its source topic already")


class GroupDeadLetters(BaseModel):
    group: str
    letters: list[DeadLetterOut]
    waiting: int = Field(description="The tenant's dead letters not replayed yet")
    truncated: bool = Field(description=f"More than {MAX_LISTED} of the tenant's dead letters: the oldest are listed")
    unattributed: int = Field(description="Records of no readable tenant (left to the platform's operators)")


class DeadLettersOut(BaseModel):
    """A report per consumer group of the service (not a list resource: each group's topic is read whole)."""

    service: str
    groups: list[GroupDeadLetters]


class ReplayIn(BaseModel):
    event_ids: list[str] = Field(
        default_factory=list, max_length=MAX_LISTED, description="Replay only these (empty: all of the tenant's)"
    )


class ReplayOut(BaseModel):
    group: str
    replayed: list[str] = Field(description="Event ids sent back to their source topic now")
    already_replayed: list[str]
    not_found: list[str] = Field(description="Asked for, but no dead letter of the tenant has that id")


def _tenant_of(letter: DeadLetter) -> str | None:
    return letter.header("ce_tenantid")


def _groups(runtime: ServiceRuntime) -> list[str]:
    return [c.group for c in runtime.consumers]


@router.get("", response_model=DeadLettersOut, summary="The tenant's dead letters, per consumer group (admin)")
async def list_dead_letters(runtime: Runtime, principal: Admin) -> dict[str, Any]:
    groups = []
    for group in _groups(runtime):
        found = await read_dead_letters(runtime.settings.kafka_bootstrap_servers, group, runtime.kafka_security)
        mine = [d for d in found.letters if _tenant_of(d) == principal.tenant_id]
        unattributed = sum(1 for d in found.letters if _tenant_of(d) is None)
        letters = [{**d.describe(), "replayed": d.position in found.replayed} for d in mine[:MAX_LISTED]]
        groups.append({
            "group": group, "letters": letters, "truncated": len(mine) > MAX_LISTED, "unattributed": unattributed,
            "waiting": sum(1 for d in mine if d.position not in found.replayed),
        })  # fmt: skip
    return {"service": runtime.name, "groups": groups}


@router.post(
    "/{group}/replay", response_model=ReplayOut, summary="Send the tenant's dead letters of a group back (admin)"
)
async def replay_dead_letters(
    runtime: Runtime,
    principal: Admin,
    body: ReplayIn,
    group: str = Path(description="One of the service's consumer groups"),
) -> dict[str, Any]:
    if group not in _groups(runtime):
        raise InvalidInput([FieldError("group", f"not a consumer group of {runtime.name}", "path")], status=404)
    bootstrap, security = runtime.settings.kafka_bootstrap_servers, runtime.kafka_security
    found = await read_dead_letters(bootstrap, group, security)
    mine = {d.event_id for d in found.letters if _tenant_of(d) == principal.tenant_id and d.event_id}
    wanted = [i for i in body.event_ids if i in mine] if body.event_ids else sorted(mine)
    if not wanted:  # never an empty list to replay(): that means every tenant's dead letters
        return {"group": group, "replayed": [], "already_replayed": [], "not_found": body.event_ids}
    report = await replay(bootstrap, group, wanted, producer=runtime.producer, security=security)
    return {
        "group": group,
        "replayed": [d.event_id for d in report.replayed],
        "already_replayed": sorted({d.event_id for d in report.already_replayed if d.event_id}),
        "not_found": [i for i in body.event_ids if i not in mine],
    }
