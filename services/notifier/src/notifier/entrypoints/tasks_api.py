"""notifier API v1: collector tasks, the worklist of steps a policy gives to a person (tenant key): list (by
assignee, snoozed ones hidden until their date), assign, snooze, complete with an outcome. Each change emits its
`dunning.task.*` event, which the policy engine puts on the case's timeline."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dunning_events.events import TaskOutcome
from dunning_kit.actor import Acting, Actor
from dunning_kit.auth import Tenant
from dunning_kit.pages import DEFAULT_LIMIT, PAGE_CONTRACT, Cursor, Limit, Page
from notifier.entrypoints.deps import Runtime, not_found, unprocessable
from notifier.entrypoints.schemas import TaskOut
from notifier.service_layer import tasks

router = APIRouter(prefix="/v1", tags=["collector tasks"])


class Assignee(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sub: str = Field(min_length=1, max_length=200, description="The person's subject at the identity provider")
    name: str = Field(min_length=1, max_length=200, description="The name the worklist and the timeline show")


class TaskAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: Assignee | None = Field(description="Who works the task; null takes it back (unassigned)")


class TaskSnooze(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime = Field(description="Hidden from the open list until then (must be in the future)")


class TaskCompletion(BaseModel):
    outcome: TaskOutcome = Field("done", description="How the task ended")
    note: str | None = Field(None, max_length=4000, description="What the collector did or agreed")


def _task_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found("task") from None


def _found(task: dict[str, Any] | None) -> dict[str, Any]:
    if task is None:
        raise not_found("task")
    return task


DONE = HTTPException(409, detail="the task is done: it can no longer be assigned or snoozed")


@router.get("/tasks", response_model=Page[TaskOut], description=PAGE_CONTRACT,
            summary="Work items for collectors (steps the policy gives to a person), oldest first")  # fmt: skip
async def list_tasks(
    principal: Tenant,
    runtime: Runtime,
    status: Literal["open", "done"] | None = "open",
    assignee: str | None = Query(None, max_length=200, description="Only the tasks of this person (subject)"),
    include_snoozed: bool = Query(False, description="Also the tasks snoozed until a later date"),
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Any:
    async with runtime.sessions() as session:
        return await tasks.page(
            session, principal.tenant_id, status, runtime.clock.now(), assignee=assignee,
            include_snoozed=include_snoozed, limit=limit, cursor=cursor,
        )  # fmt: skip


def _name(actor: Actor | None) -> str | None:
    """The person the workspace acted for (Dunning-Actor), named on the task's events and its timeline entry."""
    return actor.name if actor is not None else None


@router.post("/tasks/{task_id}/assign", response_model=TaskOut, summary="Give a collector task to a person")
async def assign_task(principal: Tenant, runtime: Runtime, task_id: str, body: TaskAssignment, actor: Acting) -> Any:
    ident = _task_id(task_id)
    who = (body.assignee.sub, body.assignee.name) if body.assignee is not None else None
    try:
        async with runtime.sessions() as session, session.begin():
            task = await tasks.assign(
                session, runtime.outbox, principal.tenant_id, ident, who, runtime.clock.now(), actor_name=_name(actor)
            )
    except tasks.TaskDone:
        raise DONE from None
    return _found(task)


@router.post("/tasks/{task_id}/snooze", response_model=TaskOut, summary="Put a collector task aside until a date")
async def snooze_task(principal: Tenant, runtime: Runtime, task_id: str, body: TaskSnooze, actor: Acting) -> Any:
    ident = _task_id(task_id)
    now = runtime.clock.now()
    if body.until <= now:
        return unprocessable([("until", f"must be in the future (now is {now.isoformat()})")])
    try:
        async with runtime.sessions() as session, session.begin():
            task = await tasks.snooze(
                session, runtime.outbox, principal.tenant_id, ident, body.until, now, actor_name=_name(actor)
            )
    except tasks.TaskDone:
        raise DONE from None
    return _found(task)


@router.post(
    "/tasks/{task_id}/complete", response_model=TaskOut, summary="Mark a collector task done, with its outcome"
)
async def complete_task(principal: Tenant, runtime: Runtime, task_id: str, body: TaskCompletion, actor: Acting) -> Any:
    ident = _task_id(task_id)
    async with runtime.sessions() as session, session.begin():
        task = await tasks.complete(
            session,
            runtime.outbox,
            principal.tenant_id,
            ident,
            body.outcome,
            body.note,
            runtime.clock.now(),
            actor_name=_name(actor),
        )
    return _found(task)
