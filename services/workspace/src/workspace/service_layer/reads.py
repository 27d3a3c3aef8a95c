"""How the pages read the services: one part of a page at a time, so a service that fails blanks only its part.

`Part` is what a page section gets: the answer, or the service that did not answer (the page writes "could not be
loaded" there). `Refused` carries a service's 422 field errors to the form that sent the values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from workspace.adapters.platform import PlatformClient, ServiceUnavailable
from workspace.domain.people import Person

T = TypeVar("T")


@dataclass(frozen=True)
class Part(Generic[T]):
    value: T | None = None
    unavailable: str | None = None  # the service that did not answer


async def part(pending: Awaitable[T]) -> Part[T]:
    try:
        return Part(value=await pending)
    except ServiceUnavailable as exc:
        return Part(unavailable=exc.service)


async def parts(*pending: Awaitable[Any]) -> list[Part[Any]]:
    """Every part at once (the services answer in parallel; the page waits for the slowest)."""
    return list(await asyncio.gather(*(part(p) for p in pending)))


class Refused(Exception):
    """A service refused the values a person sent (4xx): `errors` maps a field of the form to the reason."""

    def __init__(self, service: str, status: int, errors: dict[str, str], detail: str) -> None:
        super().__init__(f"{service} {status}: {detail}")
        self.service = service
        self.status = status
        self.errors = errors
        self.detail = detail


def field_errors(problem: Mapping[str, Any]) -> dict[str, str]:
    """`{field: reason}` of a problem document, the field without its location prefix (`query.`, `body.`)."""
    out: dict[str, str] = {}
    for error in problem.get("errors") or []:
        field = str(error.get("field") or "")
        for prefix in ("query.", "body.", "path."):
            field = field.removeprefix(prefix)
        out.setdefault(field, str(error.get("reason") or ""))
    return out


async def get_or_refused(
    platform: PlatformClient, person: Person, service: str, path: str, params: Mapping[str, Any] | None = None
) -> Any:
    """A GET whose 422 names the person's input (a filter the service does not know): `Refused`, not a failure."""
    answer = await platform.call(person, "GET", service, path, params=params)
    if answer.status_code == 422:
        problem = answer.json()
        raise Refused(service, 422, field_errors(problem), str(problem.get("detail") or ""))
    if answer.status_code != 200:
        raise ServiceUnavailable(service, f"answered {answer.status_code} to GET {path}")
    return answer.json()


async def send(
    platform: PlatformClient, person: Person, method: str, service: str, path: str, body: Any = None,
    *, idempotency_key: str | None = None,
) -> Any:  # fmt: skip
    """A change asked of a service: its JSON answer, or `Refused` with the field errors of its 4xx problem."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    answer = await platform.call(person, method, service, path, json=body, headers=headers)
    if answer.status_code >= 400:
        try:
            problem = answer.json()
        except ValueError:
            problem = {"detail": answer.text[:300]}
        raise Refused(service, answer.status_code, field_errors(problem), str(problem.get("detail") or ""))
    return answer.json() if answer.content else None


async def all_pages(
    platform: PlatformClient, person: Person, service: str, path: str, params: Mapping[str, Any], *, most: int
) -> list[dict[str, Any]]:
    """The items of a cursor-paged list, following `next_cursor` until it ends or `most` items are read."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(items) < most:
        page = await platform.get_json(
            person,
            service,
            path,
            {**params, "limit": min(500, most - len(items)), **({"cursor": cursor} if cursor else {})},
        )
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return items
