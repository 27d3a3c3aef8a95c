"""Who is asking, and may they: the session behind a page, the role a route needs, the CSRF token of a form.

- A page without a live session sends the browser to sign in, remembering the page (`next`); after sign-in the
  person lands on it again. A form posted after the session ended goes back to the page the form was on.
- A route a role may not use answers the 403 page before anything is read or written.
- Every POST carries the session's CSRF token (a hidden field `csrf_token`, or the `X-CSRF-Token` header);
  without it, or with another session's, the request is refused (403) and nothing is done.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from workspace.adapters.platform import ServiceUnavailable, path_segment
from workspace.domain.people import Role
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.web import Translator, language_of, render
from workspace.service_layer.sessions import SignedIn

SESSION_COOKIE_SECURE = "__Host-workspace"  # __Host-: only over HTTPS, only this host, path /
SESSION_COOKIE_PLAIN = "workspace_session"  # plain-http development (WORKSPACE_COOKIE_SECURE=false)


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class Forbidden(Exception):
    def __init__(self, needed: Role) -> None:
        super().__init__(needed.name)
        self.needed = needed


class CsrfRefused(Exception):
    pass


class NotFound(Exception):
    """The page names something that does not exist (or an id no service could hold): the 404 page."""


def named(value: str) -> str:
    """A path parameter that is put into another service's path: checked (adapters.platform.path_segment)."""
    try:
        return path_segment(value)
    except ValueError:
        raise NotFound() from None


def cookie_name(secure: bool) -> str:
    return SESSION_COOKIE_SECURE if secure else SESSION_COOKIE_PLAIN


def local_path(candidate: str | None, default: str = "/") -> str:
    """`candidate` if it is a path on this site (not `//host`, not a URL elsewhere), else `default`."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//") or "\\" in candidate:
        return default
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        return default
    return candidate


def _coming_back_to(request: Request) -> str:
    """The page to return to after signing in: this one for a GET, the form's page for a POST."""
    if request.method == "GET":
        query = f"?{request.url.query}" if request.url.query else ""
        return request.url.path + query
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc != request.url.netloc:
        return "/"
    return local_path(referer.path + (f"?{referer.query}" if referer.query else ""))


async def signed_in(request: Request, runtime: Runtime) -> SignedIn:
    cookie = request.cookies.get(cookie_name(runtime.settings.workspace_cookie_secure), "")
    signed = await runtime.objects.sessions.find(cookie) if cookie else None
    if signed is None:
        raise SignInRequired(_coming_back_to(request))
    request.state.signed_in = signed
    return signed


SignedInPerson = Annotated[SignedIn, Depends(signed_in)]


def require(role: Role) -> Callable[[SignedIn], Awaitable[SignedIn]]:
    """A dependency: the signed-in person, if their role is at least `role`; else the 403 page."""

    async def check(signed: SignedInPerson) -> SignedIn:
        if not signed.person.may(role):
            raise Forbidden(role)
        return signed

    return check


async def checked_form(request: Request, signed: SignedInPerson) -> FormData:
    """The posted form, once its CSRF token is the session's."""
    form = await request.form()
    token = form.get("csrf_token") or request.headers.get("x-csrf-token") or ""
    if not isinstance(token, str) or not hmac.compare_digest(token, signed.csrf_token):
        raise CsrfRefused()
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def install_page_handlers(app: FastAPI) -> None:
    """The answers to the three refusals above, and to a service that did not answer, as pages."""

    async def to_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return RedirectResponse(f"/sign-in?next={quote(exc.next_path, safe='')}", status_code=303)

    async def forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Forbidden)
        t = Translator(language_of(request))
        signed = request.state.signed_in
        return render(
            request, "refused.html", 403, title=t("forbidden.title"),
            message=t("forbidden.text", role=t(f"role.{signed.person.role.name}"), needed=t(f"role.{exc.needed.name}")),
        )  # fmt: skip

    async def csrf(request: Request, exc: Exception) -> Response:
        t = Translator(language_of(request))
        return render(request, "refused.html", 403, title=t("csrf.title"), message=t("csrf.text"))

    async def unavailable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceUnavailable)
        t = Translator(language_of(request))
        return render(request, "refused.html", 503, title=t("unavailable.title"),
                      message=t("unavailable.text", service=exc.service))  # fmt: skip

    async def no_such_thing(request: Request, exc: Exception) -> Response:
        t = Translator(language_of(request))
        return render(request, "refused.html", 404, title=t("notfound.title"), message=t("notfound.text"))

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(NotFound, no_such_thing)
    app.add_exception_handler(ServiceUnavailable, unavailable)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(CsrfRefused, csrf)
