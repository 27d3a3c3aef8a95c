"""Sign-in and sign-out pages: `/sign-in` sends the browser to the identity provider, `/auth/callback` opens the
session it comes back with, `POST /sign-out` ends it (and the provider's, where the provider offers that).

The session cookie is HttpOnly and SameSite=Lax (the provider's redirect back is a top-level GET, which Lax
lets through), Secure with the `__Host-` name unless WORKSPACE_COOKIE_SECURE=false. A second short-lived cookie
carries the sign-in's state from `/sign-in` to the callback: a callback without it was not started in this
browser and signs nobody in. Whatever goes wrong, the person sees a page saying what, never a 500.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from workspace.domain.identity import IdentityRefused
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import CheckedForm, SignedInPerson, cookie_name, local_path
from workspace.entrypoints.web import Translator, language_of, render
from workspace.service_layer.oidc import SIGN_IN_LIFETIME, SignInFailed

router = APIRouter(include_in_schema=False)
log = logging.getLogger("workspace.sign_in")


def state_cookie_name(secure: bool) -> str:
    return "__Host-workspace-sign-in" if secure else "workspace_sign_in"


def _refused(request: Request, status: int, reason: str, values: dict[str, str], next_path: str) -> HTMLResponse:
    t = Translator(language_of(request))
    log.warning("sign-in refused: %s", reason)  # the reason only: the values name the person
    return render(
        request, "sign_in_refused.html", status, title=t(reason.rsplit(".", 1)[0] + ".title"), message=t(reason, **values),
        again=f"/sign-in?next={quote(next_path, safe='')}",
    )  # fmt: skip


@router.get("/sign-in")
async def sign_in(request: Request, runtime: Runtime, next: str = "/") -> Response:
    """Off to the identity provider (or straight to `next` for a browser that is signed in already)."""
    next_path = local_path(next)
    secure = runtime.settings.workspace_cookie_secure
    cookie = request.cookies.get(cookie_name(secure), "")
    if cookie and await runtime.objects.sessions.find(cookie) is not None:
        return RedirectResponse(next_path, status_code=303)
    try:
        url, state = await runtime.objects.sign_in.begin(next_path)
    except SignInFailed as exc:
        return _refused(request, exc.status, exc.reason, exc.values, next_path)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        state_cookie_name(secure), state, max_age=int(SIGN_IN_LIFETIME.total_seconds()), path="/",
        secure=secure, httponly=True, samesite="lax",
    )  # fmt: skip
    return response


@router.get("/auth/callback")
async def callback(
    request: Request, runtime: Runtime, state: str = "", code: str = "", error: str = "",
    error_description: str = "",
) -> Response:  # fmt: skip
    """The provider's redirect back: a session for the person it signed in, then the page they were going to."""
    secure = runtime.settings.workspace_cookie_secure
    if error:
        # The provider refused (the person cancelled, the client is not allowed, ...): its words, shortened.
        detail = f"{error}: {error_description}"[:200] if error_description else error[:100]
        response: Response = _refused(request, 400, "sign_in.failed.provider", {"error": detail}, "/")
    else:
        try:
            done = await runtime.objects.sign_in.complete(
                state, code, request.cookies.get(state_cookie_name(secure), "")
            )
        except SignInFailed as exc:
            response = _refused(request, exc.status, exc.reason, exc.values, "/")
        except IdentityRefused as exc:
            response = _refused(request, 403, exc.reason, exc.values, "/")
        else:
            value, _ = await runtime.objects.sessions.open(done.person, id_token=done.id_token)
            log.info("signed in: %s (%s, tenant %s)", done.person.subject, done.person.role.name, done.person.tenant_id)
            response = RedirectResponse(local_path(done.next_path), status_code=303)
            response.set_cookie(
                cookie_name(secure), value, path="/", secure=secure, httponly=True, samesite="lax"
            )  # a browser-session cookie: the server ends the session (idle, absolute), not the cookie's age
    response.delete_cookie(state_cookie_name(secure), path="/", secure=secure, httponly=True, samesite="lax")
    return response


@router.post("/sign-out")
async def sign_out(runtime: Runtime, signed: SignedInPerson, form: CheckedForm) -> Response:
    """End the session here, then at the provider (RP-initiated logout) if it offers that."""
    await runtime.objects.sessions.close(signed.session_hash)
    secure = runtime.settings.workspace_cookie_secure
    at_provider = await runtime.objects.sign_in.sign_out_url(signed.id_token)
    response = RedirectResponse(at_provider or "/signed-out", status_code=303)
    response.delete_cookie(cookie_name(secure), path="/", secure=secure, httponly=True, samesite="lax")
    return response


@router.get("/signed-out", response_class=HTMLResponse)
async def signed_out(request: Request) -> HTMLResponse:
    return render(request, "sign_in_signed_out.html")
