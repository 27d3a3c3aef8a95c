"""A wire-level fake of the four services' exports (the shapes ledger-sync's and the kit's exports answer) and the history it serves, for the
backfill tests: cursor pages of ledger-sync's customers and invoices, and of the events the others published."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from insights.adapters.export_client import ExportClient

from . import factories as fx

URLS = {
    "ledger-sync": "http://ledger.test", "policy-engine": "http://policy.test", "notifier": "http://notifier.test",
    "promise-tracker": "http://tracker.test",
}  # fmt: skip
KEY = "export-key"


def phase_one() -> list[Any]:
    return [
        fx.customer(), fx.invoice("A", total="100", version=1), fx.invoice("B", total="50", version=1),
        fx.payment("P1", [fx.alloc("A", "40", "60", 2)], received=date(2026, 3, 5), when=fx.at(4)),
        fx.step_due("S1", {"A": "60", "B": "50"}, when=fx.at(5)), fx.sent("D1", "S1", when=fx.at(5.01)),
        fx.sent("D1", "S1", when=fx.at(5.2), delivered=True),
        fx.reversal("P1", [fx.alloc("A", "40", "100", 3)], when=fx.at(7)),
        *fx.promise("PR1", when=fx.at(8), kept_at=fx.at(12)),
        fx.credit("N1", [fx.alloc("A", "10", "90", 4)], issued=date(2026, 3, 10), when=fx.at(9)),
        fx.voided("B", total="50", version=2, when=fx.at(11)),
        fx.dispute("A", opened=True, version=5, when=fx.at(12)),
    ]  # fmt: skip


def phase_two() -> list[Any]:
    return [
        fx.payment("P2", [fx.alloc("A", "90", "0", 6)], received=date(2026, 3, 20), when=fx.at(18)),
        fx.dispute("A", opened=False, version=7, when=fx.at(19)),
    ]


def ledger_export() -> dict[str, list[dict[str, Any]]]:
    """What ledger-sync's exports answer after phase one (its state then)."""
    return {
        "/v1/exports/customers": [{"customer_id": "C1", "name": "Customer C1", "segment": "smb", "erased": False}],
        "/v1/exports/invoices": [
            {"invoice_id": "A", "customer_id": "C1", "number": "N-A", "currency": "EUR", "total": "100.00",
             "balance": "90.00", "issue_date": "2026-03-02", "due_date": "2026-04-01", "terms": "net30",
             "status": "open", "disputed": True, "version": 5,
             "payments": [{"payment_id": "P1", "received_on": "2026-03-05", "amount": "40.00",
                           "reversed_at": fx.at(7).isoformat()}],
             "credits": [{"credit_note_id": "N1", "issued_on": "2026-03-10", "amount": "10.00"}],
             "closed": None, "disputes": [{"opened_at": fx.at(12).isoformat(), "resolved_at": None}]},
            {"invoice_id": "B", "customer_id": "C1", "number": "N-B", "currency": "EUR", "total": "50.00",
             "balance": "0.00", "issue_date": "2026-03-02", "due_date": "2026-04-01", "terms": "net30",
             "status": "void", "disputed": False, "version": 2, "payments": [], "credits": [],
             "closed": {"status": "void", "closed_at": fx.at(11).isoformat(), "amount": "50.00"}, "disputes": []},
        ],
    }  # fmt: skip


class FakeExports:
    """The four services' export routes at the wire (httpx.MockTransport): `limit`/`cursor` paging, the tenant's
    key required; `fail_once` answers 503 once for the page at that (path, cursor)."""

    def __init__(self, tenant: str, events: list[Any]) -> None:
        self.lists: dict[tuple[str, str], list[dict[str, Any]]] = {
            ("ledger.test", path): items for path, items in ledger_export().items()
        }
        source_host = {"policy-engine": "policy.test", "notifier": "notifier.test", "promise-tracker": "tracker.test"}
        for service, host in source_host.items():
            topic_prefix = {"policy-engine": "dunning.", "notifier": ("notification.", "consent."),
                            "promise-tracker": ("promise.", "plan.")}[service]  # fmt: skip
            self.lists[(host, "/v1/exports/events")] = [
                env.model_dump(mode="json") for env in events if env.type.startswith(topic_prefix)
            ]
        self.fail_once: set[tuple[str, str | None]] = set()
        self.requests = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"title": "Unauthorized"})
        cursor = request.url.params.get("cursor")
        if (request.url.path, cursor) in self.fail_once:
            self.fail_once.discard((request.url.path, cursor))
            return httpx.Response(503, json={"title": "Service Unavailable"})
        items = self.lists[(request.url.host, request.url.path)]
        start, limit = int(cursor or 0), int(request.url.params["limit"])
        end = start + limit
        return httpx.Response(
            200, json={"items": items[start:end], "next_cursor": str(end) if end < len(items) else None}
        )

    def client(self) -> ExportClient:
        return ExportClient(URLS, transport=httpx.MockTransport(self.handler))
