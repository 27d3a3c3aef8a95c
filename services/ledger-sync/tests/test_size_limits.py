"""Size limits at every door (API, CSV import, connectors): one tenant's megabytes of tags or contacts never become
an event the broker refuses; what the limits allow stays far below a broker message."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from dunning_events.codec import encode
from dunning_events.envelope import new_event
from dunning_events.events import Allocation, CustomerUpserted, PaymentApplied
from dunning_events.outbox import DEFAULT_MAX_MESSAGE_BYTES
from ledger_sync.devfakes.quickbooks import FakeQuickBooks
from ledger_sync.domain.records import (
    MAX_ALLOCATIONS,
    MAX_CONTACTS,
    MAX_EMAIL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PHONE_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    CustomerRecord,
)
from ledger_sync.testing import LedgerHarness

from .test_connector_quickbooks import h, qbo, sync  # noqa: F401  (fixtures)
from .test_csv_import import upload

CUSTOMER = {"id": "C-1", "name": "Initech GmbH", "email": "ap@initech.example"}
CONTACT = {"name": "Accounts payable", "email": "ap@initech.example", "phone": "+4930123456"}


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"tags": [f"t{n}" for n in range(MAX_TAGS + 1)]}, "tags"),
        ({"tags": ["x" * 200_000]}, "tags"),  # one tag of 200 kB (body limits may refuse more)
        ({"contacts": [CONTACT] * (MAX_CONTACTS + 1)}, "contacts"),
        ({"contacts": [{**CONTACT, "name": "y" * 200_000}]}, "contacts"),
        ({"name": "z" * (MAX_NAME_LENGTH + 1)}, "name"),
        ({"email": "a" * MAX_EMAIL_LENGTH + "@initech.example"}, "email"),
        ({"phone": "1" * (MAX_PHONE_LENGTH + 1)}, "phone"),
    ],
)
async def test_an_oversized_customer_is_422_naming_the_field_and_writes_nothing(
    harness: LedgerHarness, over: dict[str, Any], field: str
) -> None:
    r = await harness.post("/v1/customers", {**CUSTOMER, **over})
    assert r.status_code == 422, r.text[:500]
    fields = [d["field"] for d in r.json()["errors"]]
    assert any(f == field or f.startswith(f"{field}.") or f.startswith(f"{field}[") for f in fields), fields
    assert len(r.content) < 20_000, "the answer does not echo the megabytes back"
    assert (await harness.get("/v1/customers/C-1")).status_code == 404
    assert await harness.event_types() == []


async def test_a_payment_with_too_many_allocations_is_422_naming_them(harness: LedgerHarness) -> None:
    body = {
        "id": "PAY-1", "customer_id": "C-1", "currency": "EUR", "amount": "1.00", "received_on": "2026-03-10",
        "allocations": [{"invoice_id": f"INV-{n}", "amount": "0.01"} for n in range(MAX_ALLOCATIONS + 1)],
    }  # fmt: skip
    r = await harness.post("/v1/payments", body)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "allocations", r.text[:500]


async def test_a_csv_customer_with_too_many_tags_names_its_line_and_column(harness: LedgerHarness) -> None:
    tags = "|".join(f"t{n}" for n in range(MAX_TAGS + 1))
    r = await upload(harness, "customers", f"id,name,tags\nC-1,Initech,ok\nC-2,Hooli,{tags}\n")
    assert r["status"] == 422 and r["committed"] is False
    assert [(e["line"], e["column"]) for e in r["errors"]] == [(3, "tags")], r["errors"]
    assert await harness.event_types() == []


async def test_an_oversized_erp_customer_is_quarantined_not_published(
    h: LedgerHarness,  # noqa: F811
    qbo: tuple[FakeQuickBooks, str],  # noqa: F811
) -> None:
    fake, _ = qbo
    fake.customer("1", "Initech", "ap@initech.example")
    fake.customer("2", "H" * 2_000_000)  # a 2 MB display name
    out = await sync(h)
    assert out["succeeded"], out
    quarantined = (await h.get("/v1/connectors/quickbooks/quarantine")).json()["items"]
    assert {(q["entity_id"], q["error"].split(":")[0]) for q in quarantined} == {("2", "name")}, quarantined
    upserted = [e.data.customer_id for e in await h.events() if e.type == "customer.upserted"]
    assert upserted == ["1"]


def test_the_largest_records_the_limits_allow_make_events_far_below_a_broker_message() -> None:
    at = datetime(2026, 3, 10, tzinfo=UTC)
    record = CustomerRecord.model_validate(
        {
            "id": "C" * 200,
            "name": "N" * MAX_NAME_LENGTH,
            "tags": ["t" * MAX_TAG_LENGTH] * MAX_TAGS,
            "contacts": [
                {"name": "n" * MAX_NAME_LENGTH, "email": "e" * MAX_EMAIL_LENGTH, "phone": "1" * MAX_PHONE_LENGTH}
            ]
            * MAX_CONTACTS,
            "segment": "s" * 100,
        }
    )
    customer = CustomerUpserted(
        customer_id=record.id,
        name=record.name,
        contacts=record.all_contacts(),
        tags=record.tags,
        segment=record.segment,
    )
    payment = PaymentApplied(
        customer_id="C" * 200, payment_id="P" * 200, currency="EUR", amount=Decimal("1.00"),
        received_on=date(2026, 3, 10), unapplied=Decimal(0),
        allocations=[
            Allocation(invoice_id=f"{n:0200d}", amount=Decimal("99999999999.99"),
                       invoice_balance_after=Decimal("99999999999.99"), invoice_status_after="open",
                       invoice_version_after=2**40)
            for n in range(MAX_ALLOCATIONS)
        ],
    )  # fmt: skip
    for data in (customer, payment):
        headers, value = encode(new_event(data, tenant_id="t" * 100, source="ledger-sync", occurred_at=at))
        size = len(value) + sum(len(k) + len(v) for k, v in headers)
        assert size < DEFAULT_MAX_MESSAGE_BYTES / 2, (data.event_type, size)
