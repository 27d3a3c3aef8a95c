"""Event contracts: codec round trips, money rules, and the committed schemas are not stale."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import jsonschema
import pytest
from pydantic import ValidationError

from dunning_events.acting import EventActor, person_acting
from dunning_events.codec import PoisonEvent, UnknownEventType, decode, encode
from dunning_events.consumer import DLQ_HEADERS
from dunning_events.envelope import new_event
from dunning_events.events import EVENT_TYPES, Allocation, PaymentApplied
from dunning_events.money import Money, from_minor, round_money, to_minor
from dunning_events.outbox import event_of_row, outbox_row
from dunning_events.schema_export import SCHEMA_DIR, render_all
from dunning_events.topics import ALL_TOPICS, partition_key


def payment() -> PaymentApplied:
    return PaymentApplied(
        customer_id="C-1",
        payment_id="P-1",
        currency="EUR",
        amount=Decimal("100.10"),
        received_on=date(2026, 3, 3),
        allocations=[
            Allocation(
                invoice_id="I-1",
                amount=Decimal("100.10"),
                invoice_balance_after=Decimal("0.00"),
                invoice_status_after="paid",
            )
        ],
        unapplied=Decimal("0.00"),
    )


def test_an_event_round_trips_through_json_with_exact_decimals() -> None:
    ev = new_event(payment(), tenant_id="acme", source="test", occurred_at=datetime(2026, 3, 3, tzinfo=UTC))
    headers, raw = encode(ev)
    assert b'"amount":"100.10"' in raw, "money travels as a decimal string"
    back = decode(headers, raw)
    assert back == ev
    assert back.data.amount == Decimal("100.10")
    assert back.subject == "P-1"


def test_an_event_made_for_a_person_names_them_on_the_wire_and_through_the_outbox() -> None:
    """dunning_events.acting: an event made while a request acts for a person carries ce_actorsub/ce_actorname;
    through the outbox row (as the relay sends it) and back it is the same envelope; outside, nobody is named."""
    colin = EventActor(sub="colin", name="Colin Collectör")
    at = datetime(2026, 3, 3, tzinfo=UTC)
    with person_acting(colin):
        ev = new_event(payment(), tenant_id="acme", source="test", occurred_at=at)
    assert ev.actor == colin
    headers, raw = encode(ev)
    assert ("ce_actorname", "Colin Collectör".encode()) in headers
    assert decode(headers, raw) == ev
    row = outbox_row(ev, {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    assert event_of_row(row) == ev and row["headers"]["ce_actorsub"] == "colin"

    machine = new_event(payment(), tenant_id="acme", source="test", occurred_at=at)
    assert machine.actor is None
    machine_headers, _ = encode(machine)
    assert not [h for h, _ in machine_headers if h.startswith("ce_actor")]
    assert event_of_row(outbox_row(machine, {})).actor is None
    with pytest.raises(PoisonEvent, match="ce_actorname"):
        decode([(h, v) for h, v in headers if h != "ce_actorname"], raw)  # both or neither


def test_the_partition_key_is_tenant_and_customer() -> None:
    assert partition_key("acme", "C-1") == "acme:C-1"


def test_decode_names_what_is_wrong() -> None:
    headers, value = encode(new_event(payment(), tenant_id="acme", source="t", occurred_at=datetime.now(UTC)))
    attributes = dict(headers)
    with pytest.raises(UnknownEventType, match=r"unknown event type 'invoice\.exploded'"):
        decode(attributes | {"ce_type": b"invoice.exploded"}, value)
    with pytest.raises(UnknownEventType, match=r"ce_type: missing header"):
        decode({k: v for k, v in attributes.items() if k != "ce_type"}, value)
    with pytest.raises(PoisonEvent, match=r"ce_tenantid: missing header"):
        decode({k: v for k, v in attributes.items() if k != "ce_tenantid"}, value)
    with pytest.raises(PoisonEvent, match=r"ce_specversion: '0.3' is not CloudEvents 1.0"):
        decode(attributes | {"ce_specversion": b"0.3"}, value)
    with pytest.raises(PoisonEvent, match=r"ce_time: Input should be a valid datetime"):
        decode(attributes | {"ce_time": b"yesterday"}, value)
    data = json.loads(value)
    data["amount"] = "ten"
    with pytest.raises(PoisonEvent, match=r"data\.amount"):
        decode(attributes, json.dumps(data))
    with pytest.raises(PoisonEvent, match="not JSON"):
        decode(attributes, b"{not json")
    with pytest.raises(PoisonEvent, match="newer than this consumer knows"):
        decode(attributes | {"ce_schemaversion": b"99"}, value)


def test_money_is_never_a_float_and_respects_minor_units() -> None:
    with pytest.raises(ValidationError, match="never a float"):
        Money(amount=10.5, currency="EUR")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown currency"):
        Money(amount=Decimal("1"), currency="EUX")
    assert to_minor(Decimal("4820.00"), "EUR") == 482000
    assert to_minor(Decimal("500"), "JPY") == 500
    assert from_minor(1, "KWD") == Decimal("0.001")
    with pytest.raises(ValueError, match="more decimals"):
        to_minor(Decimal("1.005"), "EUR")
    assert round_money(Decimal("2.345"), "EUR") == Decimal("2.34")


def test_every_event_type_lives_on_a_known_topic() -> None:
    assert {m.topic for m in EVENT_TYPES.values()} == set(ALL_TOPICS)


def test_committed_schemas_and_asyncapi_are_not_stale() -> None:
    expected = render_all()
    committed = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    stale = sorted(name for name in expected.keys() | committed.keys() if expected.get(name) != committed.get(name))
    assert not stale, f"regenerate with `python -m dunning_events.schema_export`; stale: {stale}"


def test_the_asyncapi_examples_are_records_the_consumers_decode_and_the_schemas_accept() -> None:
    """Every event type has an example in the AsyncAPI document: CloudEvents headers and a value that the codec
    decodes (the wire format as documented) and the event's JSON Schema validates; DLQ headers are documented."""
    doc = json.loads((SCHEMA_DIR / "asyncapi.json").read_text())
    messages = doc["components"]["messages"]
    required = doc["components"]["schemas"]["CloudEventHeaders"]["required"]
    for event_type, model in EVENT_TYPES.items():
        [example] = messages[event_type.replace(".", "_")]["examples"]
        headers = {k: v.encode() for k, v in example["headers"].items()}
        assert set(required) <= set(headers), event_type
        event = decode(headers, json.dumps(example["payload"]))
        assert (event.type, event.schema_version) == (event_type, model.schema_version)
        schema = json.loads((SCHEMA_DIR / f"{event_type}.json").read_text())
        jsonschema.validate(example["payload"], schema)
    dlq = messages["dead_letter"]["headers"]
    assert set(dlq["required"]) == set(DLQ_HEADERS) and {"ce_id", "ce_type"} <= set(dlq["properties"])
