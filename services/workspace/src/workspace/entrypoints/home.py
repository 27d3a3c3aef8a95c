"""The pages of the frame: the dashboard's place, the language switch, the static assets."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from workspace.entrypoints.people import SignedInPerson, local_path
from workspace.entrypoints.web import render
from workspace.texts import LANGUAGES

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, signed: SignedInPerson) -> HTMLResponse:
    return render(request, "home.html")


@router.get("/language/{code}")
async def choose_language(code: str, next: str = "/") -> RedirectResponse:
    """Switch the UI language (a link, so it works without JavaScript and without a form)."""
    response = RedirectResponse(local_path(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie("lang", code, max_age=365 * 86400, httponly=True, samesite="lax", path="/")
    return response
