"""Bulk CSV import: whole-file validation with line and column, all-or-nothing, partial import, events."""

from __future__ import annotations

import io

import pytest

from ledger_sync.service_layer.imports import import_csv
from ledger_sync.service_layer.ledger import Ledger
from ledger_sync.testing import LedgerHarness

CUSTOMERS = """id,name,email,time_zone,tags,consent_sms,credit_hold
C-1,Initech GmbH,ap@initech.example,Europe/Berlin,key|de,true,false
C-2,Hooli,,America/New_York,,,
"""

INVOICES = """id,customer_id,number,currency,total,issue_date,due_date,terms
INV-1,C-1,2026-0001,EUR,100.00,2026-03-01,2026-03-31,net30
INV-2,C-1,2026-0002,EUR,250.50,2026-03-01,2026-04-30,
INV-3,C-2,"2026-0003, the ""big"" one",USD,99.99,2026-03-01,,
"""


async def upload(h: LedgerHarness, kind: str, text: str, **params: str) -> dict:
    async with h.client() as api:
        r = await api.post(
            f"/v1/imports/{kind}", content=text.encode(), params=params, headers={"content-type": "text/csv"}
        )
    return {"status": r.status_code, **r.json()}


async def test_a_clean_file_imports_every_row_and_emits_through_the_outbox(harness: LedgerHarness) -> None:
    c = await upload(harness, "customers", CUSTOMERS)
    assert (c["status"], c["imported"], c["rows"]) == (200, 2, 2), c
    i = await upload(harness, "invoices", INVOICES)
    assert (i["status"], i["imported"], i["skipped"]) == (200, 3, []), i
    inv3 = (await harness.get("/v1/invoices/INV-3")).json()
    assert (inv3["number"], inv3["currency"], inv3["total"], inv3["source"]) == (
        '2026-0003, the "big" one',
        "USD",
        "99.99",
        "csv",
    )
    customer = (await harness.get("/v1/customers/C-1")).json()
    assert customer["tags"] == ["key", "de"] and customer["consent"]["sms"] is True
    types = await harness.event_types()
    assert types.count("customer.upserted") == 2 and types.count("invoice.created") == 3
    assert types.count("ledger.synced") == 2


async def test_reimporting_the_same_file_changes_nothing(harness: LedgerHarness) -> None:
    await upload(harness, "customers", CUSTOMERS)
    await upload(harness, "invoices", INVOICES)
    again = await upload(harness, "invoices", INVOICES)
    assert (again["imported"], again["unchanged"], again["events"]) == (0, 3, 0)
    types = await harness.event_types()
    assert types.count("invoice.created") == 3 and "invoice.updated" not in types


async def test_a_file_with_errors_imports_nothing_and_names_every_line_and_column(harness: LedgerHarness) -> None:
    await upload(harness, "customers", CUSTOMERS)
    bad = (
        "id,customer_id,number,currency,total,issue_date,due_date\n"
        "INV-1,C-1,1,EUR,100.00,2026-03-01,2026-03-31\n"
        "INV-2,C-1,2,EUX,100.00,2026-03-01,\n"  # line 3: currency
        "INV-3,C-404,3,EUR,-1,2026-03-01,2026-02-01\n"  # line 4: total, due_date (customer checked once the row parses)
        "INV-4,C-404,4,EUR,5.00,2026-03-01,\n"  # line 5: unknown customer (a ledger rule)
        "INV-5,C-1,5,EUR\n"  # line 6: wrong number of cells
    )
    r = await upload(harness, "invoices", bad)
    assert r["status"] == 422 and r["committed"] is False
    got = {(e["line"], e["column"]) for e in r["errors"]}
    assert got == {(3, "currency"), (4, "total"), (4, "due_date"), (5, "customer_id"), (6, None)}, r["errors"]
    assert r["error_count"] == 5
    assert (await harness.get("/v1/invoices/INV-1")).status_code == 404, "a clean row of a bad file is not imported"
    assert "invoice.created" not in await harness.event_types()


async def test_partial_import_skips_exactly_the_bad_rows(harness: LedgerHarness) -> None:
    await upload(harness, "customers", CUSTOMERS)
    text = (
        "id,customer_id,number,currency,total,issue_date\n"
        "INV-1,C-1,1,EUR,100.00,2026-03-01\n"
        "INV-2,C-1,2,EUR,abc,2026-03-01\n"
        "INV-3,C-9,3,EUR,1.00,2026-03-01\n"
        "INV-4,C-2,4,EUR,1.00,2026-03-01\n"
    )
    r = await upload(harness, "invoices", text, partial="true")
    assert r["status"] == 200 and r["committed"] is True
    assert r["imported"] == 2
    assert [s["line"] for s in r["skipped"]] == [3, 4]
    assert r["skipped"][1]["errors"] == [{"column": "customer_id", "reason": "unknown customer 'C-9'"}]
    listed = (await harness.get("/v1/invoices")).json()["items"]
    assert [i["id"] for i in listed] == ["INV-1", "INV-4"]


async def test_unknown_and_missing_columns_are_reported_on_line_1(harness: LedgerHarness) -> None:
    r = await upload(harness, "invoices", "id,customer,number\nX,C-1,1\n")
    assert r["status"] == 422
    assert {(e["line"], e["column"], e["reason"]) for e in r["errors"]} >= {
        (1, "customer", "unknown column"),
        (1, "currency", "required column is missing"),
    }


async def test_payments_import_with_allocations_column(harness: LedgerHarness) -> None:
    await upload(harness, "customers", CUSTOMERS)
    await upload(harness, "invoices", INVOICES)
    text = (
        "id,customer_id,currency,amount,received_on,allocations\n"
        "P-1,C-1,EUR,150.00,2026-03-10,INV-1:100.00|INV-2:40.00\n"
        "P-2,C-1,EUR,10.00,2026-03-10,INV-1:10.00\n"  # INV-1 is already paid by P-1
        "P-3,C-1,EUR,10.00,2026-03-10,INV-1=10\n"
    )
    r = await upload(harness, "payments", text)
    assert r["status"] == 422
    assert {(e["line"], e["column"]) for e in r["errors"]} == {(3, "allocations"), (4, "allocations")}
    good = await upload(harness, "payments", text.rsplit("P-2", 1)[0])
    assert good["status"] == 200 and good["imported"] == 1
    assert (await harness.get("/v1/invoices/INV-2")).json()["balance"] == "210.50"
    assert (await harness.get("/v1/payments/P-1")).json()["unapplied"] == "10.00"


async def test_multipart_upload_is_accepted(harness: LedgerHarness) -> None:
    async with harness.client() as api:
        r = await api.post("/v1/imports/customers", files={"file": ("customers.csv", CUSTOMERS.encode(), "text/csv")})
    assert r.status_code == 200 and r.json()["imported"] == 2


async def test_freshness_reports_the_csv_import(harness: LedgerHarness) -> None:
    await upload(harness, "customers", CUSTOMERS)
    fresh = (await harness.get("/v1/freshness")).json()["connectors"]
    assert [(f["connector"], f["scheduled"]) for f in fresh] == [("csv", False)]
    assert fresh[0]["last_successful_sync_at"] is not None and fresh[0]["age_seconds"] == 0
    synced = [e for e in await harness.events() if e.type == "ledger.synced"]
    assert synced[0].data.customer_id == "_tenant" and synced[0].data.connector == "csv"
    assert synced[0].data.scheduled is False  # a file import's silence never makes the ledger stale
    assert (await harness.get("/v1/freshness", key="globex-api-key")).json()["connectors"] == []


async def test_a_large_file_streams_in_batches_instead_of_being_read_whole(
    harness: LedgerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await upload(harness, "customers", CUSTOMERS)
    n = 5_000

    class CountingFile(io.StringIO):
        lines_read = 0

        def __next__(self) -> str:
            CountingFile.lines_read += 1
            return super().__next__()

    text = "id,customer_id,number,currency,total,issue_date\n" + "".join(
        f"INV-{k:06d},C-1,N{k},EUR,{k % 500 + 1}.00,2026-03-01\n" for k in range(n)
    )
    read_when_checked: list[int] = []
    written: list[int] = []
    check, write = Ledger.check_invoices, Ledger.upsert_invoices

    async def check_spy(self: Ledger, records, *args, **kwargs):  # type: ignore[no-untyped-def]
        read_when_checked.append(CountingFile.lines_read)
        return await check(self, records, *args, **kwargs)

    async def write_spy(self: Ledger, records, *args, **kwargs):  # type: ignore[no-untyped-def]
        written.append(len(records))
        return await write(self, records, *args, **kwargs)

    monkeypatch.setattr(Ledger, "check_invoices", check_spy)
    monkeypatch.setattr(Ledger, "upsert_invoices", write_spy)
    rt = harness.service.runtime
    report = await import_csv(rt.sessions, rt.outbox, rt.clock, "acme", "invoices", CountingFile(text), batch_size=1000)
    assert report.committed and report.imported == n
    # Each batch is checked once its 1000 rows are read: the reader is never more than a batch ahead;
    # then written in transactions of 1000 rows.
    assert read_when_checked == [1 + 1000 * k for k in range(1, 6)]
    assert written == [1000] * 5
    assert len((await harness.get("/v1/invoices", params={"limit": 500})).json()["items"]) == 500
