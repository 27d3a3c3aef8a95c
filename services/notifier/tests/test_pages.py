"""Every notifier list is a cursor page (issue 14, point 8): walked to its end with writes between pages, nothing
is served twice or skipped; `limit` has a maximum and a cursor is bound to its list."""

from __future__ import annotations

from dunning_kit.openapi_check import unserved_app, untyped_operations
from dunning_kit.page_walk import assert_page_limits, walk_pages
from dunning_kit.testing import RunningService

from .test_api import CUSTOM


async def test_suppressions_and_templates_walk_whole_while_rows_are_added(notifier: RunningService) -> None:
    async with notifier.client("acme-admin-key") as admin:
        before = {f"ap{n}@initech.example" for n in range(7)}
        for address in sorted(before):
            assert (await admin.post("/v1/suppressions", json={"kind": "email", "address": address})).status_code == 201

        async def add_one(page: int) -> None:
            await admin.post("/v1/suppressions", json={"kind": "email", "address": f"late{page}@initech.example"})

        pages = await walk_pages(admin.get, "/v1/suppressions", limit=2, between=add_one)
        seen = [s["address"] for page in pages for s in page]
        assert len(seen) == len(set(seen)) and before <= set(seen)

        # Shipped defaults and the tenant's overrides interleave; the override flag holds across a page border.
        assert (await admin.put("/v1/templates/firm_reminder", json=CUSTOM)).status_code == 200
        templates = [t for page in await walk_pages(admin.get, "/v1/templates", limit=5) for t in page]
        keys = [(t["template_id"], t["locale"], t["origin"]) for t in templates]
        assert keys == sorted(set(keys)), "no duplicates, in key order"
        assert ("firm_reminder", "en", "tenant") in keys
        overridden = {(t["template_id"], t["locale"]) for t in templates if t.get("overridden")}
        assert overridden == {("firm_reminder", "en")}

        suppressions_cursor = (await admin.get("/v1/suppressions", params={"limit": 1})).json()["next_cursor"]
        for path in ("/v1/deliveries", "/v1/tasks", "/v1/templates"):
            await assert_page_limits(admin.get, path, other_list_cursor=suppressions_cursor)


async def test_every_operation_declares_its_request_and_response_schemas() -> None:
    assert untyped_operations(await unserved_app("notifier")) == []
