"""Problem details (RFC 9457): the one shape of every error the platform answers, and the one 404 of every
read whose object reaches the service by events.

Every error (400, 401, 403, 404, 409, 413, 422, 429, 5xx) is `application/problem+json` with `type` (a URI;
`about:blank` when the status says it all), `title` (the status's phrase or a short name of the problem),
`status`, `detail` (a sentence for a human) and `instance` (the request path). A field error (400 malformed
body, 422 invalid input) adds `errors`, the list of `{"field", "reason", "location"}`: `field` in dotted form
with list indexes as the request spelled them (`contacts.0.email`, `steps[3].offset_days`, `query.cursor`,
`Idempotency-Key`), `reason` saying why. Problems may carry more members (`pending_events`, a CSV error's
`line` and `column`); RFC 9457 tells a client to ignore a member it does not expect.

Every service builds these bodies here (`Problem`, `invalid_input`, `InvalidInput`); the kit's app installs
the exception handlers that render them (dunning_kit.app) and `ProblemDetails` / `FieldProblem` document
them in every service's OpenAPI, so what the document says is what a client gets.

Services learn of invoices and customers from events, so "not there" has two meanings a client must be able
to tell apart: *not arrived yet* (the service still has events to apply: retry, `Retry-After` says when) and
*unknown* (it has applied every event on the broker and none was about it). `read_projected` decides which,
from the consumer groups' lag, so every service answers it the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:  # the runtime (its housekeeping) uses modules that build problems
    from dunning_kit.runtime import ServiceRuntime

PROBLEM_JSON = "application/problem+json"
NOT_ARRIVED_YET = "urn:dunning:problem:not-arrived-yet"
RETRY_AFTER_S = 1  # a consumer applies a batch in milliseconds; a second later the answer is usually final
INVALID_INPUT = "urn:dunning:problem:invalid-input"
MALFORMED_BODY = "urn:dunning:problem:malformed-body"


_RFC_9110_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}  # Python still has the old names


def title_of(status: int) -> str:
    """The status's reason phrase, as RFC 9110 names it."""
    if status in _RFC_9110_PHRASES:
        return _RFC_9110_PHRASES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Client Error" if status < 500 else "Server Error"


class ProblemResponse(JSONResponse):
    """A problem document; one built without its request gets `instance` (the path) when it is sent."""

    media_type = PROBLEM_JSON

    def __init__(self, problem: dict[str, Any], status_code: int, headers: dict[str, str] | None = None) -> None:
        self.problem = problem
        super().__init__(problem, status_code=status_code, headers=headers, media_type=PROBLEM_JSON)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.problem.get("instance") is None and scope["type"] == "http":
            members = list(self.problem.items())
            at = min(len(members), 4)  # after type, title, status, detail: where every problem has it
            self.problem = dict([*members[:at], ("instance", scope["path"]), *members[at:]])
            self.body = self.render(self.problem)
            self.headers["content-length"] = str(len(self.body))
        await super().__call__(scope, receive, send)


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
    detail: str = "validation failed",
    instance: str | None = None,
    type: str = INVALID_INPUT,
    **extensions: Any,
) -> dict[str, Any]:
    """The body of a 400/404/422 that names fields (see the module docstring for the shape)."""
    body: dict[str, Any] = {"type": type, "title": title_of(status), "status": status, "detail": detail}
    if instance is not None:
        body["instance"] = instance
    body["errors"] = [e.as_dict() if isinstance(e, FieldError) else e for e in errors]
    return {**body, **extensions}


def invalid_input(
    errors: Iterable[FieldError | dict[str, Any]],
    /,
    *,
    status: int = 422,
    detail: str = "validation failed",
    request: Request | None = None,
    instance: str | None = None,
    type: str = INVALID_INPUT,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A field error answered as `application/problem+json` (422 unless `status` says otherwise)."""
    if instance is None and request is not None:
        instance = request.url.path
    body = field_problem_body(status, errors, detail=detail, instance=instance, type=type, **extensions)
    return ProblemResponse(body, status, headers)


class InvalidInput(Problem):
    """Raise anywhere in a request to answer `invalid_input(errors)`: the app's Problem handler renders it."""

    def __init__(self, errors: Sequence[FieldError], *, status: int = 422, detail: str = "validation failed") -> None:
        super().__init__(status, title_of(status), detail, type=INVALID_INPUT)
        self.errors = list(errors)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        return field_problem_body(self.status, self.errors, detail=self.detail, instance=instance, type=self.type)


class FieldErrorOut(BaseModel):
    """One entry of a field problem's `errors` (CSV imports add `line` and `column`)."""

    model_config = ConfigDict(extra="allow")

    field: str | None = Field(None, description="The field, e.g. `query.customer_id` or `contacts.0.email`")
    location: str | None = Field(None, description="Where the field was: path, query, header or body")
    reason: str = Field(description="Why it was refused")


class ProblemDetails(BaseModel):
    """What every error of the platform looks like (`application/problem+json`, RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="RFC 9457 problem type (a URI; about:blank: the status says it)")
    title: str = Field(description="A short name of the problem, e.g. Not Found")
    status: int = Field(description="The HTTP status, repeated")
    detail: str = Field(description="What went wrong, for a human")
    instance: str | None = Field(None, description="The request path")


class FieldProblem(ProblemDetails):
    """What every 400 and 422 of the platform looks like: a problem naming the fields that were refused."""

    type: str = Field(INVALID_INPUT, description="RFC 9457 problem type")
    errors: list[FieldErrorOut] = Field(description="Every field that was refused, and why")


def problem_json(problem: Problem, instance: str | None) -> JSONResponse:
    """`problem` as the response every error of the platform is."""
    return ProblemResponse(problem.body(instance), problem.status, problem.headers)


async def problem_response(request: Request, exc: Exception) -> JSONResponse:
    """The app's exception handler for `Problem`."""
    assert isinstance(exc, Problem)
    return problem_json(exc, request.url.path)


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
