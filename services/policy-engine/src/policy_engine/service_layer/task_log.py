"""Collector tasks on the case's timeline: the notifier's dunning.task.assigned|snoozed|completed (a person took,
put aside or finished the work a policy step gave them) become a `task` entry on each invoice the task is about,
named by the step it was made for (or one entry for the customer when the task names no invoice we know).

The handlers take the Engine (its repository and clock) like its own methods and are listed in HANDLERS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dunning_events.envelope import Envelope
from dunning_events.events import DunningTaskAssigned, DunningTaskCompleted, DunningTaskSnoozed

if TYPE_CHECKING:  # handlers.py lists these in its table: a runtime import would be circular
    from policy_engine.service_layer.handlers import Engine


NOTE_KIND = "task"


def by_person_of(env: Envelope[Any]) -> dict[str, Any]:
    """The timeline detail naming the person an event was made for (dunning_events.acting), if any."""
    return {"actor": env.actor.as_detail()} if env.actor is not None else {}


def _by(by: str | None) -> str:
    return f" by {by}" if by else ""


async def _note(engine: Engine, env: Envelope[Any], reason: str, **detail: Any) -> None:
    d = env.data
    tenant = env.tenant_id
    detail = {"task_id": d.task_id, "step_id": d.step_id, "by": d.by, **detail, **by_person_of(env)}
    known = await engine.repo.cases(tenant, d.invoice_ids) if d.invoice_ids else {}
    for invoice_id in d.invoice_ids:
        if invoice_id not in known:
            continue
        step = await engine.repo.step_name_of(tenant, invoice_id, d.step_id)
        await engine.repo.write_invoice_note(
            tenant, d.customer_id, invoice_id, engine.now, NOTE_KIND, reason, step, **detail
        )
    if not known:
        await engine.repo.write_customer_note(tenant, d.customer_id, engine.now, NOTE_KIND, reason, **detail)


async def on_task_assigned(engine: Engine, env: Envelope[DunningTaskAssigned]) -> None:
    d = env.data
    if d.assignee_name is None:
        reason = f"collector task unassigned{_by(d.by)}"
    else:
        reason = f"collector task assigned to {d.assignee_name}{_by(d.by)}"
    await _note(engine, env, reason, assignee_sub=d.assignee_sub, assignee_name=d.assignee_name)


async def on_task_snoozed(engine: Engine, env: Envelope[DunningTaskSnoozed]) -> None:
    d = env.data
    reason = f"collector task snoozed until {d.until.isoformat()}{_by(d.by)}"
    await _note(engine, env, reason, until=d.until.isoformat())


async def on_task_completed(engine: Engine, env: Envelope[DunningTaskCompleted]) -> None:
    d = env.data
    # The note is free text: it stays in `detail` (cut on erasure), never in the reason.
    reason = f"collector task completed ({d.outcome.replace('_', ' ')}){_by(d.by)}"
    await _note(engine, env, reason, outcome=d.outcome, note=d.note)
