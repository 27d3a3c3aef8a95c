"""The FastAPI application shell every service shares: lifespan, health, readiness, metrics, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dunning_events.tracing import tracer
from dunning_kit.auth import ApiKeyRegistry
from dunning_kit.db import timed_out
from dunning_kit.logs import register_secret_settings
from dunning_kit.problems import PROBLEM_JSON, Problem, problem_response
from dunning_kit.request_limits import BodyTooLarge, RequestLimits, RouteLimits, problem_for_body_too_large
from dunning_kit.runtime import ServiceRuntime


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        out.append({"field": ".".join(loc) or "(body)", "reason": err.get("msg", "invalid"), "type": err.get("type")})
    return out


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"error": "malformed JSON body", "detail": _field_errors(exc)}, status_code=400)
    return JSONResponse({"error": "validation failed", "detail": _field_errors(exc)}, status_code=422)


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
    # Added before the span middleware, so it runs inside it: a BaseHTTPMiddleware reads the body through a task
    # group, which would turn the 413 raised while counting into an ExceptionGroup (a 500) on its way out.
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

    @app.get("/healthz", tags=["operations"], summary="Process alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @app.get("/readyz", tags=["operations"], summary="Database and broker reachable")
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/quietz", tags=["operations"], summary="Nothing in flight: no outbox backlog, lag or due timers")
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

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def prometheus_metrics() -> PlainTextResponse:
        try:
            await runtime.quiet_report()  # refreshes lag, backlog and timer gauges
        except Exception:
            pass
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app
