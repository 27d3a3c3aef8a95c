"""The worklist (`/worklist`): what needs a person across the services, highest priority first (amount at risk
weighted by age, `domain.worklist.priority`), each item linking to its case. A collector completes a collector task
here with an outcome (a CSRF-checked POST form; notifier's task API), and a hand-off to collections with what was
done with the file (policy-engine's hand-off API)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from workspace.adapters.platform import ServiceUnavailable
from workspace.domain import formats
from workspace.domain.people import Role
from workspace.domain.worklist import HAND_OFF_OUTCOMES, KINDS
from workspace.entrypoints.cases import labeller
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import CheckedForm, SignedInPerson, require
from workspace.entrypoints.web import Translator, language_of, render
from workspace.service_layer.reads import Refused
from workspace.service_layer.sessions import SignedIn
from workspace.service_layer.worklist import (
    assign_task,
    complete_hand_off,
    complete_task,
    snooze_task,
    total_at_risk,
    worklist,
)

router = APIRouter(include_in_schema=False)
CURRENCY = re.compile(r"^[A-Z]{3}$")


async def show(
    request: Request, runtime: Runtime, signed: SignedIn, *, status: int = 200, task_errors: dict[str, Any] | None = None,
) -> HTMLResponse:  # fmt: skip
    t = Translator(language_of(request))
    currency = request.query_params.get("currency", "").strip().upper()
    kind = request.query_params.get("kind", "")
    errors: dict[str, str] = {}
    if currency and not CURRENCY.match(currency):
        errors["currency"] = t("dash.filter.currency_invalid")
    if kind and kind not in KINDS:
        errors["kind"] = t("work.kind_invalid")
    today = runtime.clock.now().date()
    found = None
    if not errors:
        found = await worklist(
            runtime.objects.platform, signed.person, today, currency=currency or None, kind=kind or None
        )
    return render(
        request, "worklist.html", 422 if errors else status, found=found, today=today, kinds=KINDS, fmt=formats,
        errors=errors, values={"currency": currency, "kind": kind}, task_errors=task_errors or {},
        totals=total_at_risk(found.items) if found else {}, may_act=signed.person.may(Role.collector),
        done=request.query_params.get("done"), label=labeller(t), hand_off_outcomes=HAND_OFF_OUTCOMES,
    )  # fmt: skip


@router.get("/worklist", response_class=HTMLResponse)
async def show_worklist(request: Request, signed: SignedInPerson, runtime: Runtime) -> HTMLResponse:
    return await show(request, runtime, signed)


@router.post("/worklist/tasks/{task_id}/complete")
async def complete(
    request: Request, task_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Depends(require(Role.collector))
) -> Response:  # fmt: skip
    note = str(form.get("note") or "").strip()

    async def change() -> None:
        await complete_task(runtime.objects.platform, signed.person, task_id, note)

    return await _task_action(request, runtime, signed, task_id, "complete", {"note": note}, change)


async def _task_action(
    request: Request, runtime: Runtime, signed: SignedIn, task_id: str, action: str, values: dict[str, str],
    change: Any,
) -> Response:  # fmt: skip
    """One of a task's actions; what the notifier refuses comes back at the task's form, the input kept."""
    try:
        await change()
    except Refused as exc:
        errors = exc.errors or {"_form": exc.detail}
        if "until" in errors:  # the notifier's field is the form's date
            errors["snooze_until"] = errors.pop("until")
        return await show(request, runtime, signed, status=422, task_errors={task_id: {"errors": errors, **values}})
    except ServiceUnavailable as exc:
        errors = {"_form": Translator(language_of(request))("case.not_done", service=exc.service)}
        return await show(request, runtime, signed, status=503, task_errors={task_id: {"errors": errors, **values}})
    return RedirectResponse(f"/worklist?done={action}", status_code=303)


@router.post("/worklist/tasks/{task_id}/assign")
async def assign(
    request: Request, task_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Depends(require(Role.collector))
) -> Response:  # fmt: skip
    """The task becomes the signed-in person's (the notifier keeps who; the policy engine's timeline says it)."""

    async def change() -> None:
        await assign_task(runtime.objects.platform, signed.person, task_id)

    return await _task_action(request, runtime, signed, task_id, "assign", {}, change)


@router.post("/worklist/tasks/{task_id}/snooze")
async def snooze(
    request: Request, task_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Depends(require(Role.collector))
) -> Response:  # fmt: skip
    """Off the open list until a day (it comes back by itself then)."""
    until = str(form.get("snooze_until") or "").strip()

    async def change() -> None:
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", until):
            t = Translator(language_of(request))
            raise Refused("workspace", 422, {"snooze_until": t("work.snooze_date")}, "")
        await snooze_task(runtime.objects.platform, signed.person, task_id, until)

    return await _task_action(request, runtime, signed, task_id, "snooze", {"snooze_until": until}, change)


@router.post("/worklist/hand-offs/{invoice_id}/complete")
async def complete_hand_off_route(
    request: Request, invoice_id: str, form: CheckedForm, runtime: Runtime,
    signed: SignedIn = Depends(require(Role.collector)),
) -> Response:  # fmt: skip
    """Complete a hand-off to collections with an outcome (and a note): off the list, on the case's timeline."""
    outcome = str(form.get("outcome") or "")
    note = str(form.get("note") or "").strip()

    async def change() -> None:
        if outcome not in HAND_OFF_OUTCOMES:
            t = Translator(language_of(request))
            raise Refused("workspace", 422, {"outcome": t("work.hand_off.outcome")}, "")
        await complete_hand_off(runtime.objects.platform, signed.person, invoice_id, outcome, note)

    return await _task_action(request, runtime, signed, invoice_id, "hand_off", {"outcome": outcome, "note": note},
                              change)  # fmt: skip
