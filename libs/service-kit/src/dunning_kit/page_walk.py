"""Test helper: walk a cursor-paged list to its end, optionally writing between two pages (the keyset promise)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dunning_kit.testing import problem_fields

Get = Callable[..., Awaitable[Any]]  # an httpx-like `get(path, params=...)` answering a response


async def walk_pages(
    get: Get,
    path: str,
    *,
    limit: int,
    params: dict[str, Any] | None = None,
    between: Callable[[int], Awaitable[None]] | None = None,
    max_pages: int = 100,
) -> list[list[dict[str, Any]]]:
    """Every page of `path` in order; `between(n)` runs after page n (e.g. inserts rows that sort anywhere)."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while len(pages) < max_pages:
        response = await get(path, params={**(params or {}), "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}, body
        assert len(body["items"]) <= limit
        pages.append(body["items"])
        if between is not None:
            await between(len(pages))
        if (cursor := body["next_cursor"]) is None:
            return pages
    raise AssertionError(f"{path}: more than {max_pages} pages")


async def assert_page_limits(
    get: Get, path: str, other_list_cursor: str, params: dict[str, Any] | None = None, max_limit: int | None = None
) -> None:
    """limit above the maximum (the lists' MAX_LIMIT unless given, e.g. MAX_EXPORT_LIMIT) → 422 naming
    `query.limit`; a cursor of another list or a damaged one → 422 naming `query.cursor` (query parameters are
    named `query.<name>` like every other field problem's)."""
    from dunning_kit.pages import MAX_LIMIT

    too_many = await get(path, params={**(params or {}), "limit": (max_limit or MAX_LIMIT) + 1})
    assert too_many.status_code == 422 and problem_fields(too_many.json()) == ["query.limit"], too_many.text
    for cursor in (other_list_cursor, "bm90IGEgY3Vyc29y", "%%%"):
        refused = await get(path, params={**(params or {}), "cursor": cursor})
        assert refused.status_code == 422 and problem_fields(refused.json()) == ["query.cursor"], refused.text
