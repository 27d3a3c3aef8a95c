"""Every ledger-sync route documents its response and request bodies: a client generated from the OpenAPI
document gets types, not `object` (issue 14, point 9)."""

from __future__ import annotations

from dunning_kit.openapi_check import unserved_app, untyped_operations


async def test_every_operation_declares_its_request_and_response_schemas() -> None:
    assert untyped_operations(await unserved_app("ledger-sync")) == []


async def test_every_list_is_a_cursor_page_with_a_documented_limit() -> None:
    doc = (await unserved_app("ledger-sync")).openapi()
    lists = ["/v1/customers", "/v1/invoices", "/v1/payments", "/v1/credit-notes", "/v1/connectors",
             "/v1/connectors/{name}/quarantine", "/v1/connectors/{name}/drift"]  # fmt: skip
    for path in lists:
        op = doc["paths"][path]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        assert params["limit"]["schema"]["maximum"] == 500 and "maximum 500" in params["limit"]["description"], path
        assert "cursor" in params, path
        page = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert set(doc["components"]["schemas"][page]["properties"]) == {"items", "next_cursor"}, path


async def test_the_exports_are_cursor_pages_with_their_own_larger_limit() -> None:
    doc = (await unserved_app("ledger-sync")).openapi()
    for path, item in (("/v1/exports/customers", "ExportCustomer"), ("/v1/exports/invoices", "ExportInvoice")):
        op = doc["paths"][path]["get"]
        limit = {p["name"]: p for p in op["parameters"]}["limit"]
        assert (limit["schema"]["maximum"], limit["schema"]["default"]) == (5000, 1000), path
        page = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert doc["components"]["schemas"][page]["properties"]["items"]["items"]["$ref"].endswith(item), path
