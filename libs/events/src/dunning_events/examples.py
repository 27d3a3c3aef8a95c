"""One example of every event type, built from its model: the AsyncAPI document's message examples and the
fast encoder's test cases (every field filled, optional ones included, so each one's encoding is exercised).

The values follow the field's type; a few names get a value of the domain (a currency, a country, a time zone) so
that the examples validate and read like real events.
"""

from __future__ import annotations

import types
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel

from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import EVENT_TYPES, ChannelHold, NextStep

OCCURRED_AT = datetime(2026, 3, 11, 9, 30, 0, tzinfo=UTC)
# Fixed ids: the committed AsyncAPI document must not change from one generation to the next.
EVENT_ID = uuid.UUID("7d3f5b2e-8c1a-4e6f-9b0d-2a4c6e8f1a3b")
CORRELATION_ID = uuid.UUID("0b9e4d7c-3a2f-4c1e-8d6b-5f7a9c1e3b2d")
TENANT = "acme"

_BY_NAME: dict[str, Any] = {
    "customer_id": "C-1001",
    "invoice_id": "INV-2026-0042",
    "invoice_ids": ["INV-2026-0042"],
    "number": "2026-0042",
    "currency": "EUR",
    "country": "DE",
    "time_zone": "Europe/Berlin",
    "locale": "de-DE",
    "email": "buchhaltung@mueller.example",
    "phone": "+4930123456",
    "name": "Müller GmbH",
    "lines": ["Hauptstraße 1"],
    "postal_code": "10115",
    "city": "Berlin",
    "region": None,
    "recipient": "b***@mueller.example",
    "address": "b***@mueller.example",
    "connector": "quickbooks",
    "provider": "smtp",
    "pseudonym": "erased-3f9a1c",
    "tags": ["key-account"],
    "segment": "smb",
    "channels": ["email", "letter"],
}
_AT = datetime(2026, 3, 11, 9, 0, 0, tzinfo=UTC)
# Where the generic values would read as nonsense (a step held and sent at once), the event's own example values.
_BY_TYPE: dict[str, dict[str, Any]] = {
    "dunning.step.held": {
        "step_name": "call_escalation",
        "policy_id": "default",
        "held": [
            ChannelHold(
                channel="voice",
                rule="contact_cap",
                reason="voice: contact cap reached (7 attempts about this debt in the last 7 days, at most 7)",
            )
        ],
        "sent": False,
        "moved_to": datetime(2026, 3, 16, 7, 0, 0, tzinfo=UTC),
    },
    "dunning.step.due": {"next_step": NextStep(step_name="firm_reminder_2", at=datetime(2026, 3, 26, 9, tzinfo=UTC))},
}


def _value(name: str, annotation: Any, default: Any) -> Any:
    if name in _BY_NAME and annotation is not bool:  # ConsentFlags.email is a flag, Contact.email an address
        return _BY_NAME[name]
    origin = get_origin(annotation)
    if origin is Annotated:
        return _value(name, get_args(annotation)[0], default)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return _value(name, options[0], default)
    if origin is Literal:
        return default if default is not None and default in get_args(annotation) else get_args(annotation)[0]
    if origin is list:
        return [_value(name, get_args(annotation)[0], None)]
    if annotation is AwareDatetime:
        return _AT
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return example_of(annotation)
        if issubclass(annotation, bool):
            return bool(default) if isinstance(default, bool) else True
        if issubclass(annotation, int):
            return default if isinstance(default, int) and default > 0 else 3
        if issubclass(annotation, Decimal):
            return Decimal("1250.50")
        if issubclass(annotation, datetime):
            return _AT
        if issubclass(annotation, date):
            return date(2026, 2, 9)
        if issubclass(annotation, str):
            return default if isinstance(default, str) and default else _identifier(name)
    raise TypeError(f"no example value for {name}: {annotation!r}")


def _identifier(name: str) -> str:
    if name.endswith("_id"):
        return f"{name[:-3].upper().replace('_', '-')}-1"
    return name.replace("_", " ")


def example_of(model: type[BaseModel]) -> Any:
    """An instance of `model` with every field set."""
    values = {
        name: _value(name, field.annotation, field.default if not field.is_required() else None)
        for name, field in model.model_fields.items()
    }
    return model(**values)


def example_event(event_type: str) -> Envelope[EventData]:
    """The example event of a type: fixed ids and time, tenant `acme`, emitted by the service that owns it."""
    model = EVENT_TYPES[event_type]
    data: EventData = model(**{**example_of(model).__dict__, **_BY_TYPE.get(event_type, {})})
    env = new_event(data, tenant_id=TENANT, source=SOURCES[event_type.split(".")[0]], occurred_at=OCCURRED_AT)
    return env.model_copy(update={"id": EVENT_ID, "correlation_id": CORRELATION_ID})


# Which service emits which family of events (the first part of the type).
SOURCES = {
    "customer": "ledger-sync",
    "invoice": "ledger-sync",
    "payment": "ledger-sync",
    "credit_note": "ledger-sync",
    "dispute": "ledger-sync",
    "ledger": "ledger-sync",
    "dunning": "policy-engine",
    "notification": "notifier",
    "consent": "notifier",
    "promise": "promise-tracker",
    "plan": "promise-tracker",
}
