"""The app's API routes with their full paths. This FastAPI keeps included routers as lazily resolved
`_IncludedRouter` entries (not flattened into `app.routes`): `iter_route_contexts` walks them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import compile_path


@dataclass(frozen=True)
class ApiRoute:
    path: str  # the full path template, e.g. /v1/promises/{promise_id}
    methods: frozenset[str]
    route: APIRoute  # as declared (its dependant holds the route's own dependencies and parameters)

    def matches(self, method: str, path: str) -> bool:
        pattern: re.Pattern[str] = compile_path(self.path)[0]
        return method in self.methods and pattern.match(path) is not None


def api_routes(app: FastAPI) -> Iterator[ApiRoute]:
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        if isinstance(original, APIRoute) and context.path_format:
            yield ApiRoute(context.path_format, frozenset(context.methods or ()), original)
