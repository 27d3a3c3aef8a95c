"""Every policy-engine list is a cursor page (issue 14, point 8): policies, versions, assignments and both
timelines walk to their end with nothing served twice or skipped; `limit` has a maximum; a cursor is bound to
its list. And every route documents its request and response schemas (point 9)."""

from __future__ import annotations

from datetime import timedelta

from dunning_kit.openapi_check import unserved_app, untyped_operations
from dunning_kit.page_walk import assert_page_limits, walk_pages

from .conftest import EngineHarness, customer, invoice
from .test_api import POLICY_YAML


async def test_assignments_timelines_policies_and_versions_walk_whole(engine: EngineHarness) -> None:
    await engine.publish(
        customer(), *(invoice(f"INV-{n}", due=engine.today + timedelta(days=10 + n)) for n in range(5))
    )
    await engine.quiet()
    async with engine.api("acme-admin-key") as admin, engine.api() as api:
        assert (await admin.post("/v1/policies", content=POLICY_YAML,
                                 headers={"content-type": "application/yaml"})).status_code == 201  # fmt: skip
        for segment in ("b", "d", "f", "h"):
            assert (await admin.put(f"/v1/assignments/segments/{segment}", json={"policy_id": "smb"})).is_success

        async def assign_around(page: int) -> None:  # one behind the cursor, one ahead of it
            await admin.put(f"/v1/assignments/segments/a{page}", json={"policy_id": "smb"})
            await admin.put(f"/v1/assignments/segments/z{page}", json={"policy_id": "smb"})

        pages = await walk_pages(admin.get, "/v1/assignments", limit=2, between=assign_around)
        targets = [a["target"] for page in pages for a in page]
        assert len(targets) == len(set(targets)) and {"b", "d", "f", "h"} <= set(targets)

        policies = [p["id"] for page in await walk_pages(admin.get, "/v1/policies", limit=1) for p in page]
        assert sorted(policies) == ["default", "smb"] and len(policies) == 2
        versions = await walk_pages(admin.get, "/v1/policies/smb/versions", limit=1)
        assert [v["version"] for page in versions for v in page] == [1]

        whole = (await api.get("/v1/customers/C-1/timeline", params={"limit": 500})).json()["items"]
        walked = [e for page in await walk_pages(api.get, "/v1/customers/C-1/timeline", limit=2) for e in page]
        assert walked == whole and len(whole) >= 5

        invoice_cursor = (await api.get("/v1/invoices/INV-1/timeline", params={"limit": 1})).json()["next_cursor"]
        customer_cursor = (await api.get("/v1/customers/C-1/timeline", params={"limit": 1})).json()["next_cursor"]
        await assert_page_limits(api.get, "/v1/customers/C-1/timeline", other_list_cursor=invoice_cursor or "x")
        for path in ("/v1/assignments", "/v1/policies", "/v1/policies/smb/versions"):
            await assert_page_limits(admin.get, path, other_list_cursor=customer_cursor)


async def test_every_operation_declares_its_request_and_response_schemas() -> None:
    doc = (app := await unserved_app("policy-engine")).openapi()
    assert untyped_operations(app) == []
    body = doc["paths"]["/v1/policies"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/yaml"}
    assert body["application/yaml"]["schema"] == body["application/json"]["schema"]
