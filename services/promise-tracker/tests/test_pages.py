"""Every promise-tracker list is a cursor page (issue 14, point 8): promises and plans walk to their end with
nothing served twice or skipped while promises are recorded between pages; `limit` has a maximum; a cursor
is bound to its list. And every route documents its request and response schemas (point 9)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dunning_kit.clock import SimulatedClock
from dunning_kit.openapi_check import unserved_app, untyped_operations
from dunning_kit.page_walk import assert_page_limits, walk_pages
from dunning_kit.testing import RunningService

from .test_promises_api import body


async def test_promises_and_plans_walk_whole_while_promises_are_recorded(
    tracker: RunningService, ledger: Any, quiet: Any, clock: SimulatedClock
) -> None:
    await ledger.customer("C-9")
    for n in range(10):
        await ledger.invoice(f"INV-Q{n}", "C-9", "10.00")
    await quiet()

    async with tracker.client() as api:

        async def promise(n: int) -> str:
            made = await api.post(
                "/v1/promises", json=body(clock, customer_id="C-9", invoice_ids=[f"INV-Q{n}"], amount="10.00")
            )
            assert made.status_code == 201, made.text
            return str(made.json()["id"])

        before = {await promise(n) for n in range(5)}

        async def one_more(page: int) -> None:
            if page <= 3:
                await promise(4 + page)

        pages = await walk_pages(api.get, "/v1/promises", limit=2, between=one_more)
        seen = [p["id"] for page in pages for p in page]
        assert len(seen) == len(set(seen)) and before <= set(seen)

        first_due = (clock.now().date() + timedelta(days=5)).isoformat()
        for n in (8, 9):
            plan = {"customer_id": "C-9", "invoice_ids": [f"INV-Q{n}"], "currency": "EUR", "instalment_count": 2,
                    "first_due_date": first_due, "interval": "weekly", "recorded_by": "collector"}  # fmt: skip
            assert (await api.post("/v1/plans", json=plan)).status_code == 201
        plans = [p for page in await walk_pages(api.get, "/v1/plans", limit=1) for p in page]
        assert len({p["id"] for p in plans}) == 2 and all(len(p["instalments"]) == 2 for p in plans)

        promises_cursor = (await api.get("/v1/promises", params={"limit": 1})).json()["next_cursor"]
        plans_cursor = (await api.get("/v1/plans", params={"limit": 1})).json()["next_cursor"]
        await assert_page_limits(api.get, "/v1/plans", other_list_cursor=promises_cursor)
        await assert_page_limits(api.get, "/v1/promises", other_list_cursor=plans_cursor)


async def test_every_operation_declares_its_request_and_response_schemas() -> None:
    assert untyped_operations(await unserved_app("promise-tracker")) == []
