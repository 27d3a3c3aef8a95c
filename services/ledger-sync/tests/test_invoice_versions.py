"""Every change of an invoice gets the next version, carried by its events (snapshots, allocations, disputes), so
consumers can ignore an older snapshot replayed after a newer fact."""

from __future__ import annotations

from ledger_sync.testing import LedgerHarness

from .test_api_writes import invoice, payment, seed
from .test_csv_import import upload


async def test_each_change_of_an_invoice_carries_the_next_version(harness: LedgerHarness) -> None:
    await seed(harness)  # invoice.created: v1
    assert (await harness.post("/v1/payments", payment())).status_code == 201  # v2
    assert (await harness.post("/v1/invoices", invoice(due_date="2026-04-15"))).status_code == 200  # v3
    assert (await harness.post("/v1/invoices/INV-1/dispute", {"reason": "late"})).status_code == 200  # v4
    assert (await harness.post("/v1/payments/PAY-1/reverse", {"reason": "bounced"})).status_code == 200  # v5
    assert (await harness.post("/v1/invoices", invoice(due_date="2026-04-15"))).status_code == 200  # unchanged
    assert (await harness.post("/v1/invoices/INV-1/write-off", {"reason": "gone"})).status_code == 200  # v6

    versions = []
    for ev in await harness.events():
        d = ev.data
        if ev.type.startswith("invoice."):
            versions.append((ev.type, d.version))
        elif ev.type.startswith("dispute."):
            versions.append((ev.type, d.invoice_version))
        elif ev.type.startswith("payment."):
            versions.extend((ev.type, a.invoice_version_after) for a in d.allocations)
    assert versions == [
        ("invoice.created", 1),
        ("payment.applied", 2),
        ("invoice.updated", 3),
        ("dispute.opened", 4),
        ("payment.reversed", 5),
        ("invoice.voided", 6),
    ]


async def test_invoices_created_by_the_bulk_import_start_at_version_1(harness: LedgerHarness) -> None:
    await upload(harness, "customers", "id,name\nC-1,Initech\n")
    r = await upload(
        harness, "invoices", "id,customer_id,number,currency,total,issue_date\nI-1,C-1,1,EUR,10.00,2026-03-01\n"
    )
    assert r["status"] == 200, r
    r = await upload(
        harness, "invoices", "id,customer_id,number,currency,total,issue_date\nI-1,C-1,1,EUR,12.00,2026-03-01\n"
    )
    assert r["status"] == 200, r
    snapshots = [(e.type, e.data.version) for e in await harness.events() if e.type.startswith("invoice.")]
    assert snapshots == [("invoice.created", 1), ("invoice.updated", 2)]
