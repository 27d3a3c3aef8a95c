"""Cursor pages: the one envelope, `limit` and cursor every list endpoint of the platform answers with.

A page is `{"items": [...], "next_cursor": "..." | null}`; the client passes `next_cursor` back as `cursor`
until it is null. The cursor is opaque to clients: base64url of the list's name and the keyset position of the
last item served (e.g. `(created_at, id)`), so the next page is `WHERE (created_at, id) > position` on an
indexed order. Keyset pages stay stable while rows are inserted: nothing is served twice and nothing that
existed when the walk began is skipped (an offset page shifts under inserts). The list's name inside the
cursor makes a cursor from one list refused by another (422 naming `cursor`) instead of silently misread.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from dunning_kit.problems import FieldError, InvalidInput

T = TypeVar("T")
R = TypeVar("R")
Position = tuple[Any, ...]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

PAGE_CONTRACT = (
    f"A cursor page: at most `limit` items (default {DEFAULT_LIMIT}, maximum {MAX_LIMIT}) and `next_cursor`; "
    "pass `next_cursor` back as `cursor` for the next page until it is null."
)

Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"Page size: default {DEFAULT_LIMIT}, maximum {MAX_LIMIT} (more is refused with 422 naming `limit`)",
    ),
]
# Exports (a read model's backfill walks a whole history): larger pages, the same cursor.
DEFAULT_EXPORT_LIMIT = 1000
MAX_EXPORT_LIMIT = 5000
ExportLimit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_EXPORT_LIMIT,
        description=f"Page size: default {DEFAULT_EXPORT_LIMIT}, maximum {MAX_EXPORT_LIMIT} (more is refused with "
        "422 naming `limit`)",
    ),
]
EXPORT_PAGE_CONTRACT = (
    f"A cursor page: at most `limit` items (default {DEFAULT_EXPORT_LIMIT}, maximum {MAX_EXPORT_LIMIT}) and "
    "`next_cursor`; pass `next_cursor` back as `cursor` for the next page until it is null."
)
Cursor = Annotated[
    str | None,
    Query(
        max_length=2000,
        description="`next_cursor` of the previous page of the same list (opaque; another list's is refused)",
    ),
]


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_cursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None = Field(description="Pass it back as `cursor` for the next page; null on the last page")


# Each position part is stored with a tag so a datetime comes back a datetime (JSON has no such type).
_ENCODE: dict[type, tuple[str, Callable[[Any], Any]]] = {
    datetime: ("t", lambda v: v.isoformat()),
    date: ("d", lambda v: v.isoformat()),
    int: ("i", lambda v: v),
    str: ("s", lambda v: v),
}


def _int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError("not an integer")
    return value


def _str(value: Any) -> str:
    # PostgreSQL text holds no NUL, so no issued position does: a cursor carrying one was made, not issued.
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a string")
    return value


_DECODE: dict[str, Callable[[Any], Any]] = {
    "t": lambda v: datetime.fromisoformat(_str(v)),
    "d": lambda v: date.fromisoformat(_str(v)),
    "i": _int,
    "s": _str,
}


def _tagged(value: Any) -> list[Any]:
    for kind in (datetime, date, int, str):  # datetime before date: a datetime is a date
        if isinstance(value, kind) and not isinstance(value, bool):
            tag, encode = _ENCODE[kind]
            return [tag, encode(value)]
    raise TypeError(f"a cursor position holds str, int, date or datetime, not {type(value).__name__}")


class CursorCodec:
    """The cursor of one list: `CursorCodec("notifier.deliveries")`; a position is a tuple of str/int/date/datetime."""

    def __init__(self, list_name: str) -> None:
        self.list_name = list_name

    def encode(self, position: Position) -> str:
        raw = json.dumps([self.list_name, [_tagged(v) for v in position]], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def decode(self, cursor: str | None, arity: int) -> Position | None:
        """The position in `cursor` (None for no cursor); 422 naming `cursor` for anything this list did not issue."""
        if not cursor:
            return None
        try:
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
            name, parts = json.loads(raw)
            if name != self.list_name:
                raise _refused("a cursor of another list; start this list without one")
            if not isinstance(parts, list) or len(parts) != arity:
                raise ValueError("wrong shape")
            return tuple(_DECODE[tag](value) for tag, value in parts)
        except InvalidInput:
            raise
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, KeyError):
            raise _refused("not a cursor this API returned") from None

    def page(self, rows: Sequence[R], limit: int, position: Callable[[R], Position], view: Callable[[R], T]) -> Page[T]:
        """The page of the first `limit` rows, each shown by `view` (fetch `limit + 1` rows: the extra one says a
        next page exists, so the last page has no cursor and no empty page is ever needed)."""
        served = list(rows[:limit])
        more = len(rows) > limit and bool(served)
        return Page[T](items=[view(r) for r in served], next_cursor=self.encode(position(served[-1])) if more else None)


def _refused(reason: str) -> InvalidInput:
    return InvalidInput([FieldError("query.cursor", reason, "query")])
