"""The field problem every ledger-sync router answers with when one field (or the key it names) is at fault."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from dunning_kit.problems import INVALID_INPUT, FieldError, invalid_input


def error(status: int, message: str, field: str, reason: str) -> JSONResponse:
    """The kit's field problem (`application/problem+json`, `errors[]` naming the field)."""
    kind = INVALID_INPUT if status == 422 else "about:blank"
    return invalid_input([FieldError(field, reason)], status=status, detail=message, type=kind)
