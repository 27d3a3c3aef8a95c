"""Events the deadline timer assembles without re-validation must still be exactly what the contract says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from dunning_events.codec import decode, encode
from dunning_events.events import PromiseBroken, PromiseKept
from dunning_events.money import from_minor, minor_units
from promise_tracker.adapters.deadline_events import amount, uuid4_strings
from promise_tracker.service_layer.outcomes import Outcomes, Resolution

NOW = datetime(2026, 3, 6, 8, 0, 0, tzinfo=UTC)


def promise_row(**over: object) -> SimpleNamespace:
    return SimpleNamespace(
        tenant_id="acme", customer_id="C-1", promise_id="P-1", invoice_ids=["INV-1", "INV-2"], currency="JPY",
        amount_minor=120_000, plan_id=None, deadline=datetime(2026, 3, 6, 7, 59, 59, tzinfo=UTC), **over,
    )  # fmt: skip


def test_a_broken_promise_event_built_from_a_row_passes_the_published_contract() -> None:
    outcomes = Outcomes(None, None, NOW)  # type: ignore[arg-type]
    outcomes._emit_ending(Resolution(promise_row(), "partially_kept", 20_000), {("acme", "P-1"): 3}, None)
    [env] = outcomes._events
    again = decode(*encode(env))  # the consumer's path: full validation against the registered model
    assert isinstance(again.data, PromiseBroken)
    assert again.data == PromiseBroken(
        customer_id="C-1", promise_id="P-1", invoice_ids=["INV-1", "INV-2"], currency="JPY", amount="120000",
        received="20000", shortfall="100000", partially_kept=True, deadline=datetime(2026, 3, 6, 7, 59, 59, tzinfo=UTC),
        broken_promise_count=3,
    )  # fmt: skip
    assert (again.type, again.subject, again.tenant_id, again.source) == (
        "promise.broken",
        "P-1",
        "acme",
        "promise-tracker",
    )
    assert again.occurred_at == NOW


def test_a_kept_promise_event_carries_the_cause_of_its_payment() -> None:
    outcomes = Outcomes(None, None, NOW)  # type: ignore[arg-type]
    outcomes._emit_ending(Resolution(promise_row(), "kept", 120_000), {}, None)
    first = outcomes._events[0]
    outcomes._emit_ending(Resolution(promise_row(), "kept", 120_000), {}, first)
    kept = decode(*encode(outcomes._events[1]))
    assert isinstance(kept.data, PromiseKept) and str(kept.data.received) == "120000"
    assert kept.causation_id == first.id and kept.correlation_id == first.correlation_id


def test_amounts_are_written_as_the_contract_writes_decimals() -> None:
    for currency in ("JPY", "EUR", "KWD", "CLF"):  # 0, 2, 3 and 4 decimals
        units = minor_units(currency)
        for minor in (0, 1, -1, 5, 9, 10, 99, 100, 101, 1_250, -1_250, 120_000, 10**15 + 7, -(10**12)):
            assert amount(minor, units) == format(from_minor(minor, currency), "f"), (currency, minor)


def test_event_ids_are_random_version_4_uuids_as_str_writes_them() -> None:
    ids = list(uuid4_strings(500))
    assert len(set(ids)) == 500
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
