"""The operations page (admin): dead letters per service and consumer group with their error, replayed one or all
(idempotent: each dead letter goes back once, however often the button is pressed), the ERP connectors' status
and last sync, and the delivery failure rates per channel over the last 30 days."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from workspace.adapters.platform import ServiceUnavailable
from workspace.domain.people import Role
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import CheckedForm, require
from workspace.entrypoints.web import Translator, language_of, render
from workspace.service_layer.operations import CONSUMING, FAILURE_WINDOW_DAYS, operations_view
from workspace.service_layer.sessions import SignedIn

router = APIRouter(prefix="/operations", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def operations(request: Request, runtime: Runtime, signed: SignedIn = Depends(require(Role.admin))) -> Response:
    view = await operations_view(runtime.objects.platform, signed.person, runtime.clock.now().date())
    return render(
        request, "operations.html", view=view, days=FAILURE_WINDOW_DAYS,
        replayed=request.query_params.get("replayed"), again=request.query_params.get("again"),
    )  # fmt: skip


@router.post("/dead-letters/replay", response_class=HTMLResponse)
async def replay(
    request: Request, runtime: Runtime, form: CheckedForm, signed: SignedIn = Depends(require(Role.admin))
) -> Response:
    service, group = str(form.get("service") or ""), str(form.get("group") or "")
    event_id = str(form.get("event_id") or "")
    if service not in CONSUMING or not group or group in (".", "..") or "/" in group:
        t = Translator(language_of(request))
        return render(request, "refused.html", 422, title=t("ops.bad_replay"), message=t("ops.bad_replay"))
    body: dict[str, Any] = {"event_ids": [event_id] if event_id else []}
    answer = await runtime.objects.platform.call(
        signed.person, "POST", service, f"/v1/dead-letters/{group}/replay", json=body
    )
    if answer.status_code != 200:
        raise ServiceUnavailable(service, f"answered {answer.status_code} to the replay")
    report = answer.json()
    return RedirectResponse(
        f"/operations?replayed={len(report['replayed'])}&again={len(report['already_replayed'])}#dead-letters",
        status_code=303,
    )
