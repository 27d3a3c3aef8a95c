"""The kit's cursor pages: the codec round-trips keyset positions and refuses any cursor its list did not issue."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dunning_kit.pages import MAX_LIMIT, Cursor, CursorCodec, Limit, Page
from dunning_kit.problems import InvalidInput

DELIVERIES = CursorCodec("notifier.deliveries")


def test_a_position_round_trips_with_its_types() -> None:
    at = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
    position = (at, date(2026, 3, 1), 42, "d-7")
    assert DELIVERIES.decode(DELIVERIES.encode(position), 4) == position


def test_the_cursor_is_url_safe_and_unpadded() -> None:
    cursor = DELIVERIES.encode(("ä/ö+?" * 20, 1))
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _refused_field(cursor: str, codec: CursorCodec = DELIVERIES, arity: int = 2) -> str:
    with pytest.raises(InvalidInput) as caught:
        codec.decode(cursor, arity)
    assert caught.value.status == 422
    return caught.value.errors[0].field


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        base64.urlsafe_b64encode(b"after:INV-1").decode(),  # today's ledger-sync cursor shape
        base64.urlsafe_b64encode(json.dumps(["notifier.deliveries", [["s", "x"]]]).encode()).decode(),  # arity
        base64.urlsafe_b64encode(json.dumps(["notifier.deliveries", [["i", "1"], ["s", "x"]]]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["notifier.deliveries", [["t", "soon"], ["s", "x"]]]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["notifier.deliveries", [["?", 1], ["s", "x"]]]).encode()).decode(),
    ],
)
def test_a_tampered_cursor_is_refused_naming_cursor(cursor: str) -> None:
    assert _refused_field(cursor) == "query.cursor"


def test_a_cursor_of_another_list_is_refused() -> None:
    foreign = CursorCodec("notifier.tasks").encode((datetime(2026, 1, 1, tzinfo=UTC), "t-1"))
    assert _refused_field(foreign) == "query.cursor"


def test_a_page_cuts_at_limit_and_points_past_its_last_item() -> None:
    rows = [(n, f"id-{n}") for n in range(4)]
    page = DELIVERIES.page(rows, 3, lambda r: (r[0], r[1]), lambda r: r[1])
    assert page.items == ["id-0", "id-1", "id-2"]
    assert DELIVERIES.decode(page.next_cursor, 2) == (2, "id-2")
    last = DELIVERIES.page(rows[3:], 3, lambda r: (r[0], r[1]), lambda r: r[1])
    assert last.items == ["id-3"] and last.next_cursor is None


def test_limit_above_the_maximum_and_a_bad_cursor_are_422_naming_the_parameter() -> None:
    app = FastAPI()

    @app.get("/things", response_model=Page[int])
    async def things(limit: Limit = 50, cursor: Cursor = None) -> Page[int]:
        CursorCodec("things").decode(cursor, 1)
        return Page[int](items=[], next_cursor=None)

    client = TestClient(app)
    assert client.get("/things", params={"limit": MAX_LIMIT}).status_code == 200
    too_many = client.get("/things", params={"limit": MAX_LIMIT + 1})
    assert too_many.status_code == 422 and "limit" in json.dumps(too_many.json())
    schema = app.openapi()["paths"]["/things"]["get"]
    assert str(MAX_LIMIT) in next(p for p in schema["parameters"] if p["name"] == "limit")["description"]
