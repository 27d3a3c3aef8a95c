"""The one envelope every event travels in, and the base class of every event's data."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dunning_events.acting import EventActor, acting_person

# Tenant-wide facts (a finished ledger sync) have no customer; they use this in the partition key.
TENANT_WIDE = "_tenant"


class EventData(BaseModel):
    """Base of every event payload. Subclasses name their type, topic and schema version."""

    # Unknown fields are ignored on read so an additive change never breaks an older consumer.
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    topic: ClassVar[str]
    schema_version: ClassVar[int] = 1
    # Which field of the payload is the envelope's subject (the thing the event is about).
    subject_field: ClassVar[str]
    description: ClassVar[str] = ""
    # A settlement (paid, credited, voided, reversed): the outbox relay and the consumers take it ahead of bulk
    # work, never ahead of its own customer's earlier events (outbox.py, lane.py).
    priority: ClassVar[bool] = False

    customer_id: str = Field(min_length=1, description="The customer (debtor) the fact is about")

    def subject(self) -> str:
        return str(getattr(self, self.subject_field))


D = TypeVar("D", bound=EventData)


class Envelope(BaseModel, Generic[D]):
    """Metadata common to every event; `data` holds the typed payload."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(description="Unique event id; consumers de-duplicate on it")
    type: str = Field(description="Event type, e.g. invoice.created")
    schema_version: int = Field(ge=1)
    source: str = Field(description="The service that emitted it")
    occurred_at: AwareDatetime = Field(description="Business time at which the fact became true")
    tenant_id: str = Field(min_length=1)
    subject: str = Field(min_length=1, description="The invoice, customer, step or promise id")
    correlation_id: uuid.UUID = Field(description="Id shared by every event of one business flow")
    causation_id: uuid.UUID | None = Field(default=None, description="Id of the event that caused this one")
    actor: EventActor | None = Field(
        default=None, description="The person whose action made the emitting service write it (none: the service's own)"
    )
    data: D

    @property
    def customer_id(self) -> str:
        return self.data.customer_id


def new_event(
    data: D,
    *,
    tenant_id: str,
    source: str,
    occurred_at: datetime,
    caused_by: Envelope[Any] | None = None,
    correlation_id: uuid.UUID | None = None,
    actor: EventActor | None = None,
) -> Envelope[D]:
    """Wrap a payload; an event caused by another inherits its correlation id. It names the person the current
    request acts for (dunning_events.acting) unless `actor` is given."""
    if caused_by is not None:
        correlation = caused_by.correlation_id
        causation: uuid.UUID | None = caused_by.id
    else:
        correlation = correlation_id or uuid.uuid4()
        causation = None
    return Envelope[D](
        id=uuid.uuid4(),
        type=data.event_type,
        schema_version=data.schema_version,
        source=source,
        occurred_at=occurred_at,
        tenant_id=tenant_id,
        subject=data.subject(),
        correlation_id=correlation,
        causation_id=causation,
        actor=actor or acting_person(),
        data=data,
    )
