"""Test helper: walk a cursor-paged list to its end, optionally writing between two pages (the keyset promise)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

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


def refused_fields(response: Any) -> list[str]:
    """The fields a 422 names, in today's problem body or the RFC 9457 one (`errors`)."""
    body = response.json()
    entries = body.get("errors") or body.get("detail") or []
    return (
        [str(e.get("field", "")) for e in entries if isinstance(e, dict)]
        if isinstance(entries, list)
        else [json.dumps(entries)]
    )


async def assert_page_limits(get: Get, path: str, other_list_cursor: str, params: dict[str, Any] | None = None) -> None:
    """limit above the maximum → 422 naming `limit`; a cursor of another list or a damaged one → 422 naming `cursor`."""
    from dunning_kit.pages import MAX_LIMIT

    too_many = await get(path, params={**(params or {}), "limit": MAX_LIMIT + 1})
    assert too_many.status_code == 422 and any("limit" in f for f in refused_fields(too_many)), too_many.text
    for cursor in (other_list_cursor, "bm90IGEgY3Vyc29y", "%%%"):
        refused = await get(path, params={**(params or {}), "cursor": cursor})
        assert refused.status_code == 422 and any("cursor" in f for f in refused_fields(refused)), refused.text
