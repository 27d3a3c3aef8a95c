"""The pages of the frame: the language switch (the dashboard at `/` is entrypoints/dashboard.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from workspace.entrypoints.people import local_path
from workspace.texts import LANGUAGES

router = APIRouter(include_in_schema=False)


@router.get("/language/{code}")
async def choose_language(code: str, next: str = "/") -> RedirectResponse:
    """Switch the UI language (a link, so it works without JavaScript and without a form)."""
    response = RedirectResponse(local_path(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie("lang", code, max_age=365 * 86400, httponly=True, samesite="lax", path="/")
    return response
