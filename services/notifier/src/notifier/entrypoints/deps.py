"""What a route of the notifier may ask for as a parameter (its runtime, the notifier's own objects), and the
routes' small shared helpers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.responses import JSONResponse

from dunning_kit.dependencies import objects_of, runtime_of
from dunning_kit.problems import FieldError, invalid_input
from notifier.service_layer.objects import Notifier, NotifierRuntime

Runtime = Annotated[NotifierRuntime, Depends(runtime_of)]
Objects = Annotated[Notifier, Depends(objects_of)]


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
