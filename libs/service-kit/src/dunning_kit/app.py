"""The FastAPI application shell every service shares: lifespan, health, readiness, metrics, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dunning_events.tracing import tracer
from dunning_kit.auth import ApiKeyRegistry
from dunning_kit.db import timed_out
from dunning_kit.input_guard import UnstorableInputGuard
from dunning_kit.logs import register_secret_settings
from dunning_kit.problems import (
    MALFORMED_BODY,
    PROBLEM_JSON,
    FieldProblem,
    Problem,
    invalid_input,
    problem_response,
)
from dunning_kit.request_limits import BodyTooLarge, RequestLimits, RouteLimits, problem_for_body_too_large
from dunning_kit.runtime import ServiceRuntime

_LOCATIONS = ("path", "query", "header", "cookie", "body")


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        raw = err.get("loc", ())
        loc = [str(p) for p in raw if p not in ("body",)]
        error = {"field": ".".join(loc) or "(body)", "reason": err.get("msg", "invalid"), "type": err.get("type")}
        if raw and raw[0] in _LOCATIONS:
            error["location"] = raw[0]
        out.append(error)
    return out


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return invalid_input(
            _field_errors(exc), status=400, error="malformed JSON body", request=request, type=MALFORMED_BODY
        )
    return invalid_input(_field_errors(exc), request=request)


def _field_problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/FieldProblem"}}},
    }


def _document_field_problems(app: FastAPI) -> None:
    """Every operation's 422 (and, where it takes a JSON body, 400) is documented as the body it really gets.

    FastAPI documents its own `HTTPValidationError`, which no route here returns: the kit's handler and the
    edge guard answer `FieldProblem`, and the guard can answer 422 on any route, so every operation says so.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem = FieldProblem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(problem.pop("$defs", {}))
        components["FieldProblem"] = problem
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                described = responses.get("422", {}).get("description")
                if described in (None, "Validation Error"):
                    described = "A field is wrong or cannot be stored: `detail[].field` names it, `reason` says why"
                responses["422"] = _field_problem_response(described)
                if "requestBody" in operation or "400" in responses:
                    described = responses.get("400", {}).get("description", "Malformed JSON body")
                    responses["400"] = _field_problem_response(described)
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class _DatabaseBusy:
    """A statement cancelled by statement_timeout or lock_timeout answers 503 with Retry-After (a problem),
    not 500: nothing was written (the transaction rolled back) and the same request may succeed shortly."""

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
            if started or not timed_out(exc):
                raise
            problem = Problem(
                503,
                "Database busy",
                "the database did not answer in time (a statement or lock timeout); nothing was written, retry",
                headers={"Retry-After": "1"},
            )
            response = JSONResponse(
                problem.body(scope.get("path")), status_code=503, headers=problem.headers, media_type=PROBLEM_JSON
            )
            await response(scope, receive, send)


class _ServerSpanMiddleware(BaseHTTPMiddleware):
    """A server span per API call, so a trace starts at the ledger-sync call or the ERP webhook."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path in ("/healthz", "/readyz", "/quietz", "/metrics"):
            return await call_next(request)
        from opentelemetry.trace import SpanKind

        route = f"{request.method} {request.url.path}"
        with tracer().start_as_current_span(route, kind=SpanKind.SERVER) as span:
            response = await call_next(request)
            span.set_attribute("http.response.status_code", response.status_code)
            return response


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool] = Field(description="Each dependency (database, broker, ...) and whether it answers")


class Quietness(BaseModel):
    quiet: bool
    outbox_backlog: int
    consumer_lag: dict[str, int | None] = Field(description="Per consumer group: records not yet processed")
    timers_due: dict[str, int] = Field(description="Per timer loop: entries due and not yet fired")


def create_service_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    version: str = "1.0.0",
    limits: Sequence[RouteLimits] = (),
) -> FastAPI:
    """`limits`: the service's routes with a body limit or a rate limit of their own (request_limits.py)."""
    settings = runtime.settings
    register_secret_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.api_keys = ApiKeyRegistry.from_settings(settings.api_keys, settings.api_keys_file)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Problem, problem_response)
    app.add_exception_handler(BodyTooLarge, problem_for_body_too_large)
    operations = settings.rate_limit_operations_per_minute
    # Innermost to outermost (each add_middleware wraps what was added before):
    # - the input guard reads JSON and form bodies: inside the request limits, which refuse a huge body
    #   before it is read (their BodyTooLarge, raised while the guard reads, is turned into a 413 by them);
    # - the request limits run inside the span middleware: a BaseHTTPMiddleware reads the body through a task
    #   group, which would turn the 413 raised while counting into an ExceptionGroup (a 500) on its way out;
    # - a statement or lock timeout anywhere becomes a 503 at the very outside.
    app.add_middleware(UnstorableInputGuard)
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_request_body_bytes,
        routes=[
            *limits,
            RouteLimits("/metrics", rate_per_minute=operations, group="operations"),
            RouteLimits("/quietz", rate_per_minute=operations, group="operations"),
        ],
        trusted_proxy_hops=settings.trusted_proxy_hops,
    )
    app.add_middleware(_ServerSpanMiddleware)
    app.add_middleware(_DatabaseBusy)
    _document_field_problems(app)

    @app.get("/healthz", tags=["operations"], summary="Process alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @app.get("/readyz", tags=["operations"], summary="Database and broker reachable", response_model=Readiness,
             responses={503: {"description": "Not ready: `checks` says which dependency is down",
                              "model": Readiness}})  # fmt: skip
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/quietz", tags=["operations"], summary="Nothing in flight: no outbox backlog, lag or due timers",
             response_model=Quietness,
             responses={503: {"description": "Work in flight: the body says what", "model": Quietness}})  # fmt: skip
    async def quietz() -> JSONResponse:
        # Simulations and fault tests wait on this after moving the clock; ops can read it as a drain check.
        report = await runtime.quiet_report()
        body = {
            "quiet": report.quiet,
            "outbox_backlog": report.outbox_backlog,
            "consumer_lag": report.consumer_lag,
            "timers_due": report.timers_due,
        }
        return JSONResponse(body, status_code=200 if report.quiet else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string",
                                                                    "description": "Prometheus text format"}}}}})  # fmt: skip
    async def prometheus_metrics() -> PlainTextResponse:
        try:
            await runtime.quiet_report()  # refreshes lag, backlog and timer gauges
        except Exception:
            pass
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app
