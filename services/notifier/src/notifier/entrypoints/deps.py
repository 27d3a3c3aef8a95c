"""Shared helpers of the routes: the runtime and the notifier's services from the app state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from dunning_kit.problems import FieldError, invalid_input
from dunning_kit.runtime import ServiceRuntime

if TYPE_CHECKING:
    from notifier.bootstrap import Notifier


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def notifier_of(request: Request) -> Notifier:
    return request.app.state.runtime.notifier  # type: ignore[no-any-return]


def not_found(what: str) -> HTTPException:
    return HTTPException(404, detail=f"{what} not found")


def unprocessable(errors: list[tuple[str, str]]) -> JSONResponse:
    """422 in the platform's shape (the kit's field problem: `errors[]` of `{"field", "reason"}`)."""
    return invalid_input([FieldError(f, r) for f, r in errors])


def jsonable(row: Any) -> dict[str, Any]:
    out = {}
    for k, v in dict(row).items():
        out[k] = (
            v.isoformat()
            if hasattr(v, "isoformat")
            else (str(v) if k.endswith("id") and v is not None and not isinstance(v, str) else v)
        )
    return out
