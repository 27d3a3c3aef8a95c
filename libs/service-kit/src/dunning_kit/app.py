"""The FastAPI application shell every service shares: lifespan, health, readiness, metrics, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from dunning_events.tracing import tracer
from dunning_kit import audit_api, dead_letters_api, event_export
from dunning_kit.actor import ActorCheck, keys_for
from dunning_kit.auth import ApiKeyRegistry
from dunning_kit.idempotency import IdempotencyKeys
from dunning_kit.input_guard import UnstorableInputGuard
from dunning_kit.logs import register_secret_settings
from dunning_kit.problem_handlers import ServerErrors, document_problems, install_problem_handlers
from dunning_kit.request_limits import RequestLimits, RouteLimits
from dunning_kit.runtime import ServiceRuntime


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
    if event_export.router not in routers:
        # Published events are archived only by a service that serves them back (its events export): another
        # one (ledger-sync, whose export is its state) would keep personal data for EVENT_ARCHIVE_DAYS for no one,
        # out of its erasure's reach. Its relay deletes published rows after the hour, as before.
        runtime.relay.archive = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.runtime = runtime
    if runtime.consumers:
        # A consuming service shows its tenant's admins their dead letters and replays them (the workspace).
        app.include_router(dead_letters_api.router)
    app.state.api_keys = ApiKeyRegistry.from_settings(settings.api_keys, settings.api_keys_file)
    app.state.audit_log = runtime.audit_log
    install_problem_handlers(app)  # every error is application/problem+json (problem_handlers.py)
    operations = settings.rate_limit_operations_per_minute
    route_limits = [
        *limits,
        RouteLimits("/metrics", rate_per_minute=operations, group="operations"),
        RouteLimits("/quietz", rate_per_minute=operations, group="operations"),
    ]
    # Innermost to outermost (each add_middleware wraps what was added before):
    # - Idempotency-Key innermost: it sees only requests the edge let through, and holds a key's row while the
    #   route runs (dunning_kit.idempotency);
    # - the Dunning-Actor check around it: a refused actor claims no key and writes nothing (dunning_kit.actor);
    # - the input guard reads JSON and form bodies: inside the request limits, which refuse a huge body
    #   before it is read (their BodyTooLarge, raised while the guard reads, is turned into a 413 by them);
    # - the request limits run inside the span middleware: a BaseHTTPMiddleware reads the body through a task
    #   group, which would turn the 413 raised while counting into an ExceptionGroup (a 500) on its way out;
    # - at the very outside, an exception nothing handled becomes a 500 problem (a statement or lock timeout
    #   a 503), logged once.
    app.add_middleware(IdempotencyKeys)
    app.add_middleware(ActorCheck, keys=keys_for(settings))
    app.add_middleware(UnstorableInputGuard)
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_request_body_bytes,
        routes=route_limits,
        trusted_proxy_hops=settings.trusted_proxy_hops,
    )
    app.add_middleware(_ServerSpanMiddleware)
    app.add_middleware(ServerErrors)
    document_problems(app, route_limits)

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
    if runtime.audit_log is not None:
        app.include_router(audit_api.router)
    return app
