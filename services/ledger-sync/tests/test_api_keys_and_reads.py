"""Idempotency-Key, tenant isolation and the read side (filters, cursor pagination)."""

from __future__ import annotations

import asyncio

from dunning_kit.page_walk import assert_page_limits, walk_pages
from ledger_sync.testing import LedgerHarness

CUSTOMER = {"id": "C-1", "name": "Initech GmbH", "email": "ap@initech.example"}


def invoice(n: int, **over: object) -> dict[str, object]:
    return {
        "id": f"INV-{n:03d}",
        "customer_id": "C-1",
        "number": f"2026-{n:04d}",
        "currency": "EUR",
        "total": "10.00",
        "issue_date": "2026-02-01",
        "due_date": f"2026-03-{1 + n % 28:02d}",
        **over,
    }


async def test_same_idempotency_key_and_body_replays_the_first_response(harness: LedgerHarness) -> None:
    key = {"Idempotency-Key": "k-123"}
    first = await harness.post("/v1/customers", CUSTOMER, headers=key)
    replay = await harness.post("/v1/customers", CUSTOMER, headers=key)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    assert await harness.event_types() == ["customer.upserted"]


async def test_same_idempotency_key_with_another_body_is_refused_clearly(harness: LedgerHarness) -> None:
    key = {"Idempotency-Key": "k-123"}
    await harness.post("/v1/customers", CUSTOMER, headers=key)
    other = await harness.post("/v1/customers", {**CUSTOMER, "name": "Other"}, headers=key)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert (await harness.get("/v1/customers/C-1")).json()["name"] == "Initech GmbH"


async def test_concurrent_requests_with_one_key_write_once(harness: LedgerHarness) -> None:
    await harness.post("/v1/customers", CUSTOMER)
    await harness.post("/v1/invoices", invoice(1, total="100.00"))
    pay = {
        "id": "PAY-1",
        "customer_id": "C-1",
        "currency": "EUR",
        "amount": "30.00",
        "received_on": "2026-03-02",
        "allocations": [{"invoice_id": "INV-001", "amount": "30.00"}],
    }
    responses = await asyncio.gather(
        *(harness.post("/v1/payments", pay, headers={"Idempotency-Key": "same"}) for _ in range(5))
    )
    assert {r.status_code for r in responses} == {201}
    assert (await harness.event_types()).count("payment.applied") == 1
    assert (await harness.get("/v1/invoices/INV-001")).json()["balance"] == "70.00"


async def test_a_key_that_failed_validation_can_be_retried_with_a_fixed_body(harness: LedgerHarness) -> None:
    key = {"Idempotency-Key": "retry-me"}
    bad = await harness.post("/v1/customers", {**CUSTOMER, "time_zone": "Mars/Olympus"}, headers=key)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "time_zone"
    good = await harness.post("/v1/customers", CUSTOMER, headers=key)
    assert good.status_code == 201


async def test_no_key_or_a_bad_key_is_401(harness: LedgerHarness) -> None:
    for key in (None, "not-a-key"):
        assert (await harness.post("/v1/customers", CUSTOMER, key=key)).status_code == 401
        assert (await harness.get("/v1/invoices", key=key)).status_code == 401
        assert (await harness.post("/v1/invoices/INV-001/void", {}, key=key)).status_code == 401


async def test_another_tenants_objects_are_404_and_never_change(harness: LedgerHarness) -> None:
    await harness.post("/v1/customers", CUSTOMER)
    await harness.post("/v1/invoices", invoice(1))
    globex = "globex-api-key"
    assert (await harness.get("/v1/invoices/INV-001", key=globex)).status_code == 404
    assert (await harness.get("/v1/customers/C-1", key=globex)).status_code == 404
    assert (await harness.get("/v1/invoices", key=globex)).json()["items"] == []
    for path in ("/v1/invoices/INV-001/void", "/v1/invoices/INV-001/write-off", "/v1/invoices/INV-001/dispute"):
        assert (await harness.post(path, {}, key=globex)).status_code == 404
    # Paying acme's invoice from globex: the invoice does not exist there.
    pay = {
        "id": "P-X",
        "customer_id": "C-1",
        "currency": "EUR",
        "amount": "10.00",
        "received_on": "2026-03-02",
        "allocations": [{"invoice_id": "INV-001", "amount": "10.00"}],
    }
    assert (await harness.post("/v1/payments", pay, key=globex)).status_code == 422
    # The same external id in another tenant is another object.
    assert (await harness.post("/v1/customers", {**CUSTOMER, "name": "Globex's C-1"}, key=globex)).status_code == 201
    acme_invoice = (await harness.get("/v1/invoices/INV-001")).json()
    assert (acme_invoice["status"], acme_invoice["balance"], acme_invoice["disputed"]) == ("open", "10.00", False)
    assert (await harness.get("/v1/customers/C-1")).json()["name"] == "Initech GmbH"
    assert [e.type for e in await harness.events("globex")] == ["customer.upserted"]


async def test_cursor_pagination_walks_every_invoice_once(harness: LedgerHarness) -> None:
    await harness.post("/v1/customers", CUSTOMER)
    for n in range(1, 13):
        await harness.post("/v1/invoices", invoice(n))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await harness.get("/v1/invoices", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"INV-{n:03d}" for n in range(1, 13)]
    assert (await harness.get("/v1/invoices", params={"cursor": "%%%"})).status_code == 422


async def test_filters_by_status_customer_and_overdue_as_of_a_date(harness: LedgerHarness) -> None:
    await harness.post("/v1/customers", CUSTOMER)
    await harness.post("/v1/customers", {"id": "C-2", "name": "Hooli"})
    await harness.post("/v1/invoices", invoice(1, due_date="2026-03-05"))
    await harness.post("/v1/invoices", invoice(2, due_date="2026-03-20"))
    await harness.post("/v1/invoices", invoice(3, due_date="2026-03-01", customer_id="C-2"))
    await harness.post("/v1/invoices/INV-003/void", {})

    async def ids(**params: str) -> list[str]:
        r = await harness.get("/v1/invoices", params=params)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert await ids(status="void") == ["INV-003"]
    assert await ids(customer_id="C-1") == ["INV-001", "INV-002"]
    assert await ids(overdue_as_of="2026-03-10") == ["INV-001"]
    assert await ids(overdue_as_of="2026-03-25") == ["INV-001", "INV-002"]
    overdue = (await harness.get("/v1/invoices", params={"overdue_as_of": "2026-03-10"})).json()["items"][0]
    assert overdue["days_overdue"] == 5
    assert (await harness.get("/v1/invoices", params={"status": "nonsense"})).status_code == 422


async def test_openapi_documents_the_v1_routes(harness: LedgerHarness) -> None:
    doc = (await harness.get("/openapi.json")).json()
    for path in ("/v1/customers", "/v1/invoices", "/v1/payments", "/v1/credit-notes", "/v1/invoices/{invoice_id}/void"):
        assert path in doc["paths"], path


async def test_pages_stay_whole_while_customers_are_added_between_them(harness: LedgerHarness) -> None:
    """Keyset pages: rows that existed when the walk began are each served once, whatever is inserted meanwhile."""
    before = [f"C-{n:02d}" for n in range(0, 20, 2)]
    for cid in before:
        await harness.post("/v1/customers", {"id": cid, "name": cid})

    async def insert_around(page: int) -> None:  # one before everything served so far, one after
        await harness.post("/v1/customers", {"id": f"C-{2 * page - 1:02d}", "name": "late"})
        await harness.post("/v1/customers", {"id": f"C-99-{page}", "name": "late"})

    pages = await walk_pages(harness.get, "/v1/customers", limit=3, between=insert_around)
    seen = [c["id"] for page in pages for c in page]
    assert len(seen) == len(set(seen)), "served twice"
    assert set(before) <= set(seen), "skipped a customer that existed before the walk"
    assert seen == sorted(seen), "the order is the key"
    invoices_cursor = (await harness.get("/v1/customers", params={"limit": 1})).json()["next_cursor"]
    await assert_page_limits(harness.get, "/v1/invoices", other_list_cursor=invoices_cursor)
