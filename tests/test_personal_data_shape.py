"""The personal-data export's record shaping (dunning_kit.personal_data), shared by every service."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from dunning_kit.personal_data import PersonalDataExport, record


def test_a_record_is_json_ready_and_decodes_the_json_text_columns() -> None:
    row = {
        "at": datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        "due": date(2026, 3, 10),
        "amount": Decimal("1200.50"),
        "delivery_id": uuid.UUID("6d1f1c1e-6a57-4c59-9a43-5b7f3c1d2e10"),
        "detail": '{"step_id": "S-1", "at": "x"}',
        "tags": ["vip"],
        "contacts": [{"email": "ap@example.com", "since": date(2026, 1, 1)}],
        "note": None,
    }
    out = record(row, json_columns=["detail"])
    assert out == {
        "at": "2026-03-02T09:30:00+00:00",
        "due": "2026-03-10",
        "amount": "1200.50",
        "delivery_id": "6d1f1c1e-6a57-4c59-9a43-5b7f3c1d2e10",
        "detail": {"step_id": "S-1", "at": "x"},
        "tags": ["vip"],
        "contacts": [{"email": "ap@example.com", "since": "2026-01-01"}],
        "note": None,
    }
    doc = PersonalDataExport(service="notifier", customer_id="C-1", erased=False, data={"deliveries": [out]})
    assert json.loads(doc.model_dump_json())["data"]["deliveries"] == [out]
