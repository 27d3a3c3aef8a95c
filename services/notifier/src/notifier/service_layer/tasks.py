"""The collector's worklist of tasks (steps a policy gives to a person): list, assign, snooze, complete.

Each change is one transaction with the event it implies (outbox, `dunning.notifications.v1`): the policy engine
puts `dunning.task.assigned|snoozed|completed` on the case's timeline. A snoozed task is hidden from the open list
until its date (by the service's clock); completing a task that is already done changes nothing and emits nothing
(a retried request), while assigning or snoozing a done task is refused (TaskDone). `actor_name` is the acting
person, when the request names one; it travels in the events' `by` (and the task's `completed_by`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import EventData, new_event
from dunning_events.events import DunningTaskAssigned, DunningTaskCompleted, DunningTaskSnoozed, TaskOutcome
from dunning_events.outbox import OutboxWriter
from dunning_kit.pages import Page
from notifier.adapters import orm
from notifier.service_layer.queries import TASKS, plain

SOURCE = "notifier"


class TaskDone(Exception):
    """The task is done: it can no longer be assigned or snoozed."""


async def page(
    session: AsyncSession, tenant_id: str, status: str | None, now: datetime, *, assignee: str | None = None,
    include_snoozed: bool = False, limit: int, cursor: str | None,
) -> Page[dict[str, Any]]:  # fmt: skip
    """Oldest first on (created_at, id): the index (tenant_id, status, created_at, id) serves it."""
    t = orm.collector_tasks.c
    query = select(orm.collector_tasks).where(t.tenant_id == tenant_id)
    if status is not None:
        query = query.where(t.status == status)
    if assignee is not None:
        query = query.where(t.assignee_sub == assignee)
    if not include_snoozed:
        query = query.where(or_(t.snoozed_until.is_(None), t.snoozed_until <= now))
    if (after := TASKS.decode(cursor, 2)) is not None:
        query = query.where(tuple_(t.created_at, t.id) > tuple_(literal(after[0]), literal(uuid.UUID(after[1]))))
    rows = (await session.execute(query.order_by(t.created_at, t.id).limit(limit + 1))).mappings().all()
    return TASKS.page(rows, limit, lambda r: (r["created_at"], str(r["id"])), plain)


async def _locked(session: AsyncSession, tenant_id: str, task_id: uuid.UUID) -> dict[str, Any] | None:
    t = orm.collector_tasks.c
    query = select(orm.collector_tasks).where(t.id == task_id, t.tenant_id == tenant_id).with_for_update()
    row = (await session.execute(query)).mappings().first()
    return dict(row) if row is not None else None


async def _change(session: AsyncSession, task: dict[str, Any], **values: Any) -> dict[str, Any]:
    t = orm.collector_tasks.c
    query = update(orm.collector_tasks).where(t.id == task["id"]).values(**values).returning(orm.collector_tasks)
    return plain((await session.execute(query)).mappings().one())


def _facts(task: dict[str, Any], actor_name: str | None) -> dict[str, Any]:
    invoices = (task.get("details") or {}).get("invoices") or []
    return {
        "customer_id": task["customer_id"], "task_id": str(task["id"]), "step_id": task["step_id"],
        "invoice_ids": [i["invoice_id"] for i in invoices if isinstance(i, dict) and "invoice_id" in i],
        "by": actor_name,
    }  # fmt: skip


async def _emit(session: AsyncSession, outbox: OutboxWriter, tenant_id: str, data: EventData, now: datetime) -> None:
    await outbox.add(session, [new_event(data, tenant_id=tenant_id, source=SOURCE, occurred_at=now)])


async def assign(
    session: AsyncSession, outbox: OutboxWriter, tenant_id: str, task_id: uuid.UUID, assignee: tuple[str, str] | None,
    now: datetime, actor_name: str | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """Give the task to a person (sub, name), or take it back (None). None when there is no such task."""
    task = await _locked(session, tenant_id, task_id)
    if task is None:
        return None
    if task["status"] == "done":
        raise TaskDone
    sub, name = assignee if assignee is not None else (None, None)
    changed = await _change(session, task, assignee_sub=sub, assignee_name=name)
    data = DunningTaskAssigned(**_facts(task, actor_name), assignee_sub=sub, assignee_name=name)
    await _emit(session, outbox, tenant_id, data, now)
    return changed


async def snooze(
    session: AsyncSession, outbox: OutboxWriter, tenant_id: str, task_id: uuid.UUID, until: datetime, now: datetime,
    actor_name: str | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    task = await _locked(session, tenant_id, task_id)
    if task is None:
        return None
    if task["status"] == "done":
        raise TaskDone
    changed = await _change(session, task, snoozed_until=until)
    await _emit(session, outbox, tenant_id, DunningTaskSnoozed(**_facts(task, actor_name), until=until), now)
    return changed


async def complete(
    session: AsyncSession, outbox: OutboxWriter, tenant_id: str, task_id: uuid.UUID, outcome: TaskOutcome,
    note: str | None, now: datetime, actor_name: str | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    task = await _locked(session, tenant_id, task_id)
    if task is None:
        return None
    if task["status"] == "done":
        return plain(task)  # completed before (a retry): nothing changes, nothing is emitted again
    changed = await _change(
        session, task, status="done", note=note, outcome=outcome, completed_at=now, completed_by=actor_name,
        snoozed_until=None,
    )  # fmt: skip
    data = DunningTaskCompleted(**_facts(task, actor_name), outcome=outcome, note=note)
    await _emit(session, outbox, tenant_id, data, now)
    return changed
