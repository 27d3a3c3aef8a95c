"""Problem details (RFC 9457) and the one 404 of every read whose object reaches the service by events.

Services learn of invoices and customers from events, so "not there" has two meanings a client must be able
to tell apart: *not arrived yet* (the service still has events to apply: retry, `Retry-After` says when) and
*unknown* (it has applied every event on the broker and none was about it). `read_projected` decides which,
from the consumer groups' lag, so every service answers it the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse

from dunning_kit.runtime import ServiceRuntime

PROBLEM_JSON = "application/problem+json"
NOT_ARRIVED_YET = "urn:dunning:problem:not-arrived-yet"
RETRY_AFTER_S = 1  # a consumer applies a batch in milliseconds; a second later the answer is usually final

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
