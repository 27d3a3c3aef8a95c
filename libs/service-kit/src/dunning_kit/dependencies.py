"""FastAPI dependencies that hand a route the service's runtime and its own objects: the one place outside app.py
that reads `app.state`. Each service declares typed aliases over them, e.g.
`Engine = Annotated[EngineObjects, Depends(objects_of)]`, and its routes take `engine: Engine`."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from dunning_kit.runtime import ServiceRuntime


def runtime_of(request: Request) -> ServiceRuntime:
    """The runtime serving this request (create_service_app put it there)."""
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def objects_of(request: Request) -> Any:
    """The service's own objects (`ServiceRuntime.objects`); the service's alias gives them their type."""
    return runtime_of(request).objects
