"""Problem details (RFC 9457): the one shape of a field error, and the one 404 of every read whose object
reaches the service by events.

A field error (400 malformed body, 422 invalid input) is `application/problem+json` with `type`, `title`,
`status`, `instance`, and — the platform's v1 contract, kept so clients written against it keep working —
`error` (a short summary) and `detail` as the list of `{"field", "location", "reason"}`. RFC 9457 tells a
client to ignore a member whose type it does not expect, so a generic problem client still reads the rest.
Every service builds these bodies here (`invalid_input`, `InvalidInput`), and `FieldProblem` documents them
in every service's OpenAPI, so what the document says is what a client gets.

Services learn of invoices and customers from events, so "not there" has two meanings a client must be able
to tell apart: *not arrived yet* (the service still has events to apply: retry, `Retry-After` says when) and
*unknown* (it has applied every event on the broker and none was about it). `read_projected` decides which,
from the consumer groups' lag, so every service answers it the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dunning_kit.runtime import ServiceRuntime

PROBLEM_JSON = "application/problem+json"
NOT_ARRIVED_YET = "urn:dunning:problem:not-arrived-yet"
RETRY_AFTER_S = 1  # a consumer applies a batch in milliseconds; a second later the answer is usually final
INVALID_INPUT = "urn:dunning:problem:invalid-input"
MALFORMED_BODY = "urn:dunning:problem:malformed-body"
_TITLES = {
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
}

T = TypeVar("T")


class Problem(Exception):
    """An error answered as `application/problem+json`: type, title, status, detail, instance, extensions."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        if instance is not None:
            out["instance"] = instance
        return {**out, **self.extensions}


@dataclass(frozen=True)
class FieldError:
    """One thing wrong with a request: which field (`location` is path, query, header or body) and why."""

    field: str
    reason: str
    location: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "reason": self.reason}
        if self.location is not None:
            out["location"] = self.location
        return out


def field_problem_body(
    status: int,
    errors: Iterable[FieldError | dict[str, Any]],
    /,
    *,
    error: str = "validation failed",
    instance: str | None = None,
    type: str = INVALID_INPUT,
    **extensions: Any,
) -> dict[str, Any]:
    """The body of a 400/404/422 that names fields (see the module docstring for the shape)."""
    body: dict[str, Any] = {"type": type, "title": _TITLES.get(status, "Client Error"), "status": status}
    if instance is not None:
        body["instance"] = instance
    body["error"] = error
    body["detail"] = [e.as_dict() if isinstance(e, FieldError) else e for e in errors]
    return {**body, **extensions}


def invalid_input(
    errors: Iterable[FieldError | dict[str, Any]],
    /,
    *,
    status: int = 422,
    error: str = "validation failed",
    request: Request | None = None,
    instance: str | None = None,
    type: str = INVALID_INPUT,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A field error answered as `application/problem+json` (422 unless `status` says otherwise)."""
    if instance is None and request is not None:
        instance = request.url.path
    body = field_problem_body(status, errors, error=error, instance=instance, type=type, **extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


class InvalidInput(Problem):
    """Raise anywhere in a request to answer `invalid_input(errors)`: the app's Problem handler renders it."""

    def __init__(self, errors: Sequence[FieldError], *, status: int = 422, error: str = "validation failed") -> None:
        super().__init__(status, _TITLES.get(status, "Client Error"), error, type=INVALID_INPUT)
        self.errors = list(errors)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        return field_problem_body(self.status, self.errors, error=self.detail, instance=instance, type=self.type)


class FieldErrorOut(BaseModel):
    """One entry of a field problem's `detail` (CSV imports add `line` and `column`)."""

    model_config = ConfigDict(extra="allow")

    field: str | None = Field(None, description="The field, e.g. `query.customer_id` or `contacts.0.email`")
    location: str | None = Field(None, description="Where the field was: path, query, header or body")
    reason: str = Field(description="Why it was refused")


class FieldProblem(BaseModel):
    """What every 400 and 422 of the platform looks like (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(INVALID_INPUT, description="RFC 9457 problem type")
    title: str = Field(description="RFC 9457 title, e.g. Unprocessable Content")
    status: int = Field(description="The HTTP status, repeated")
    instance: str | None = Field(None, description="The request path")
    error: str = Field(description="A short summary, e.g. `validation failed`")
    detail: list[FieldErrorOut] = Field(description="Every field that was refused, and why")


async def problem_response(request: Request, exc: Exception) -> JSONResponse:
    """The app's exception handler for `Problem`."""
    assert isinstance(exc, Problem)
    return JSONResponse(
        exc.body(request.url.path), status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON
    )


async def missing(runtime: ServiceRuntime, what: str, topics: Sequence[str]) -> Problem:
    """The 404 for `what` (e.g. "invoice INV-1"), which would have arrived on `topics`."""
    pending = await runtime.unapplied(topics)
    if pending == 0:
        return Problem(
            404,
            "Not Found",
            f"unknown {what}: the {runtime.name} has applied every event published so far and none was about it",
        )
    if pending is None:
        detail = (
            f"{what} may not have arrived yet: the {runtime.name} cannot tell right now whether events about it "
            f"are still waiting (its consumer is not connected to the broker); retry in {RETRY_AFTER_S}s"
        )
    else:
        detail = (
            f"{what} has not arrived yet: the {runtime.name} still has {pending} event{'s' if pending != 1 else ''} "
            f"to apply (processing is asynchronous); retry in {RETRY_AFTER_S}s"
        )
    return Problem(
        404,
        "Not arrived yet",
        detail,
        type=NOT_ARRIVED_YET,
        headers={"Retry-After": str(RETRY_AFTER_S)},
        pending_events=pending,
    )


async def read_projected(
    runtime: ServiceRuntime, load: Callable[[], Awaitable[T | None]], *, what: str, topics: Sequence[str]
) -> T:
    """`load()`'s result, or raise the 404 that says whether `what` has not arrived yet or is unknown.

    The lag is read after the miss, and a zero lag is followed by one more `load()`: an event applied between
    the first read and the lag check is returned, not called unknown (offsets are committed only after the
    effect, so lag 0 means everything published before the check is visible to the second read).
    """
    found = await load()
    if found is not None:
        return found
    problem = await missing(runtime, what, topics)
    if problem.type != NOT_ARRIVED_YET:
        found = await load()
        if found is not None:
            return found
    raise problem
