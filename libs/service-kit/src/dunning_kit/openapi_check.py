"""The typed-OpenAPI rule every service's test applies: each operation documents what it answers and reads.

An operation fails the rule when its success response has no schema or only a bare one (`{}` or an object of
anything, what a `dict[str, Any]` or `Any` return gives), or when it reads a body it does not document: a
declared body model, or a raw body (`request.body()`, `.stream()`, `.form()`) documented through `openapi_extra`
with a schema per content type. HTML pages declare `text/html`; a 204, a redirect, or a route that declares an
empty answer (`response_class=Response`, no content in the document) needs no schema.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

_READS_RAW_BODY = re.compile(r"request\.(body|stream|form)\(")
_NO_BODY_STATUSES = {"204", "301", "302", "303", "307", "308"}


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def _bare(schema: dict[str, Any] | None, doc: dict[str, Any]) -> bool:
    """True for a schema that says nothing: missing, `{}`, or an object with neither properties nor typed values."""
    if not schema:
        return True
    schema = _resolve(schema, doc)
    if any(k in schema for k in ("anyOf", "oneOf", "allOf")):
        return all(_bare(s, doc) for s in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []))
    if schema.get("type") == "object" and not schema.get("properties"):
        values = schema.get("additionalProperties")
        return not isinstance(values, dict) or _bare(values, doc)
    return not schema or schema == {"additionalProperties": True}


def _functions_reached(fn: Callable[..., Any], depth: int = 2) -> Iterator[Callable[..., Any]]:
    """The endpoint and the module functions it calls by name (two levels: routes delegate to one helper)."""
    yield fn
    if depth == 0:
        return
    module_globals = getattr(fn, "__globals__", {})
    for name in getattr(getattr(fn, "__code__", None), "co_names", ()):
        called = module_globals.get(name)
        if inspect.isfunction(called) and called.__module__ == fn.__module__ and called is not fn:
            yield from _functions_reached(called, depth - 1)


def _endpoints(app: FastAPI) -> dict[tuple[str, str], Callable[..., Any]]:
    """(METHOD, path) -> endpoint, through included routers (FastAPI keeps those as lazy contexts)."""
    found: dict[tuple[str, str], Callable[..., Any]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path_format:
            found.update({(m, context.path_format): route.endpoint for m in route.methods or ()})
    return found


def _reads_raw_body(endpoint: Callable[..., Any]) -> bool:
    for fn in _functions_reached(endpoint):
        try:
            if _READS_RAW_BODY.search(inspect.getsource(fn)):
                return True
        except (OSError, TypeError):
            continue
    return False


def untyped_operations(app: FastAPI) -> list[str]:
    """Every `METHOD /path: what is missing` of the app's OpenAPI document (empty when all is declared)."""
    doc = app.openapi()
    problems: list[str] = []
    endpoints = _endpoints(app)
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            name = f"{method.upper()} {path}"
            successes = sorted(s for s in op.get("responses", {}) if s.startswith(("2", "3")))
            if not successes:
                problems.append(f"{name}: no success response")
            for status in successes[:1]:
                content = op["responses"][status].get("content")
                if status in _NO_BODY_STATUSES:
                    continue
                for media, spec in (content or {}).items():
                    if _bare(spec.get("schema"), doc):
                        problems.append(f"{name}: {status} {media} has no typed schema")
            body = op.get("requestBody")
            for media, spec in ((body or {}).get("content") or {}).items():
                if _bare(spec.get("schema"), doc):
                    problems.append(f"{name}: request body {media} has no typed schema")
            endpoint = endpoints.get((method.upper(), path))
            if body is None and endpoint is not None and _reads_raw_body(endpoint):
                problems.append(f"{name}: reads a request body the document does not declare")
    return problems


async def unserved_app(service: str) -> FastAPI:
    """The service's app built through its composition root but never started (no database, no broker): its
    OpenAPI document is all a test of the document needs."""
    from dunning_kit.clock import SystemClock
    from dunning_kit.services import spec

    module = spec(service).bootstrap()
    settings = module.Settings(
        database_url="postgresql+asyncpg://openapi@127.0.0.1:9/unused",
        kafka_bootstrap_servers="127.0.0.1:9",
        dev_mode=True,
    )
    runtime = module.build_runtime(settings, SystemClock())
    app: FastAPI = module.create_app(runtime)
    await runtime.producer.stop()  # never started: closing it only keeps the garbage collector quiet
    return app
