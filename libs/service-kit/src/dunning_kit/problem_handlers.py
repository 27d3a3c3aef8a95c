"""How every service answers an error: the exception handlers and the outermost middleware the kit's app
factory installs, and the OpenAPI responses that document them (the body is dunning_kit.problems').

* `HTTPException` (FastAPI's or Starlette's: an unknown path 404, a 405, the API-key 401 with its
  `WWW-Authenticate`, the admin 403, a route's own 404/409) -> a problem with the status's phrase as `title`
  and the exception's text as `detail`, its headers kept.
* `RequestValidationError` -> 422 naming every refused field (400 when the JSON body is malformed).
* `Problem` (and `InvalidInput`) -> its own body.
* `BodyTooLarge` raised while a route reads the body -> the same 413 the request limits answer before it.
* Anything else -> 500 `Internal Server Error` whose `detail` says nothing of the cause (no class name, no
  message: they may quote data), logged once here with its traceback; a statement or lock timeout -> 503 with
  `Retry-After` (nothing was written, the same request may succeed shortly).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dunning_kit.app_routes import api_routes
from dunning_kit.auth import admin_principal, current_principal
from dunning_kit.db import timed_out
from dunning_kit.problems import (
    MALFORMED_BODY,
    PROBLEM_JSON,
    FieldProblem,
    Problem,
    ProblemDetails,
    invalid_input,
    problem_json,
    problem_response,
    title_of,
)
from dunning_kit.request_limits import BodyTooLarge, RouteLimits, body_too_large

log = logging.getLogger(__name__)

_LOCATIONS = ("path", "query", "header", "cookie", "body")
INTERNAL_DETAIL = "the service failed to answer this request; it has been logged, retry later or report the time"


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        raw = err.get("loc", ())
        loc = [str(p) for p in raw if p not in ("body",)]
        field, reason = ".".join(loc) or "(body)", err.get("msg", "invalid")
        if err.get("type") == "json_invalid":  # loc is ("body", offset): the body is what is wrong, at that offset
            field, reason = "(body)", f"{reason} at character {loc[0]}" if loc else reason
        error = {"field": field, "reason": reason, "type": err.get("type")}
        if raw and raw[0] in _LOCATIONS:
            error["location"] = raw[0]
        out.append(error)
    return out


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return invalid_input(
            _field_errors(exc), status=400, detail="malformed JSON body", request=request, type=MALFORMED_BODY
        )
    return invalid_input(_field_errors(exc), request=request)


def problem_of_http_exception(exc: HTTPException) -> Problem:
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else title_of(exc.status_code)
    return Problem(exc.status_code, title_of(exc.status_code), detail, headers=dict(exc.headers or {}))


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, BodyTooLarge):
        return problem_json(body_too_large(exc.limit), request.url.path)
    return problem_json(problem_of_http_exception(exc), request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Problem, problem_response)


class ServerErrors:
    """Outermost middleware: an exception no handler took becomes a problem (see the module docstring), so the
    framework's plain-text 500 never reaches a client. Logged here once; not re-raised (the server would log it
    again)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                raise  # half an answer is out: only the server can end the connection
            if timed_out(exc):
                problem = Problem(
                    503,
                    "Database busy",
                    "the database did not answer in time (a statement or lock timeout); nothing was written, retry",
                    headers={"Retry-After": "1"},
                )
            else:
                log.exception("%s %s failed", scope.get("method"), scope.get("path"))
                problem = Problem(500, title_of(500), INTERNAL_DETAIL)
            await problem_json(problem, scope.get("path"))(scope, receive, send)


# ------------------------------------------------------------------------------------------------ OpenAPI


def _problem(description: str, schema: str = "ProblemDetails") -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _needs(route: APIRoute, call: Any) -> bool:
    """Whether the route depends on `call`, directly or through another dependency."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is call:
            return True
        pending.extend(dependency.dependencies)
    return False


def _auth_of_operations(app: FastAPI) -> dict[tuple[str, str], tuple[bool, bool]]:
    """(method, path) -> (needs an API key, needs an admin key), from each route's dependencies."""
    out: dict[tuple[str, str], tuple[bool, bool]] = {}
    for api in api_routes(app):
        admin = _needs(api.route, admin_principal)
        key = admin or _needs(api.route, current_principal)
        for method in api.methods:
            out[(method.lower(), api.path)] = (key, admin)
    return out


def document_problems(app: FastAPI, limits: list[RouteLimits]) -> None:
    """Every operation's error responses are documented as the problem body they really get.

    FastAPI documents its own `HTTPValidationError`, which no route here returns: the kit's handler and the
    edge guard answer `FieldProblem`, and the guard can answer 422 on any route, so every operation says so;
    400 and 413 where it takes a body, 401/403 where it takes an API key, 429 where a rate limit applies,
    500 everywhere. A response a route declares itself keeps its description and gets the problem body.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        auth = _auth_of_operations(app)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ProblemDetails, FieldProblem):
            document = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(document.pop("$defs", {}))
            components[model.__name__] = document
        for path, operations in schema.get("paths", {}).items():
            rate_limited = any(r.rate_per_minute and r.matches(path) for r in limits)
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                key, admin = auth.get((method, path), (False, False))
                wanted = {"422": "A field is wrong or cannot be stored: `errors[].field` names it, `reason` says why"}
                if "requestBody" in operation or "400" in responses:
                    wanted["400"] = "Malformed body"
                    wanted["413"] = "Request body larger than the route's limit"
                if key:
                    wanted["401"] = "Missing or invalid API key (`WWW-Authenticate: Bearer`)"
                if admin:
                    wanted["403"] = "The API key is not admin-scoped"
                if rate_limited:
                    wanted["429"] = "Too many requests from this client: `Retry-After` says when to retry"
                wanted["500"] = "The service failed (logged; the body says nothing of the cause)"
                for status, description in wanted.items():
                    responses.setdefault(status, {"description": description})
                for status, response in responses.items():
                    if status[0] not in "45":
                        continue
                    described = response.get("description")
                    if described in (None, "Validation Error"):
                        described = wanted.get(status, title_of(int(status)))
                    body = "FieldProblem" if status in ("400", "422") else "ProblemDetails"
                    responses[status] = {**response, **_problem(described, body)}
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
