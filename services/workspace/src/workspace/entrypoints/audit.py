"""The audit page (admin): who changed what through the services, newest first, optionally one person's."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from workspace.domain.people import Role
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import require
from workspace.entrypoints.web import render
from workspace.service_layer.audit import SHOWN, latest
from workspace.service_layer.sessions import SignedIn

router = APIRouter(include_in_schema=False)


@router.get("/audit", response_class=HTMLResponse)
async def audit(request: Request, runtime: Runtime, signed: SignedIn = Depends(require(Role.admin))) -> Response:
    person = request.query_params.get("person", "").strip()[:255] or None
    view = await latest(runtime.objects.platform, signed.person, of_person=person)
    return render(request, "audit.html", view=view, person_filter=person or "", shown=SHOWN)
