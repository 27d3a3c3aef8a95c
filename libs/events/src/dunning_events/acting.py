"""The person an event was made for: a member of staff whose action (through the workspace, with a verified
`Dunning-Actor` header) made the emitting service write it. Consumers that keep a record people read (the policy
engine's timeline) name them there; events the services make on their own carry no person.

The emitting service's request sets the person for its duration (dunning_kit.actor); `new_event` reads it, so no
handler passes it by hand. On the wire it is two CloudEvents extension attributes, `ce_actorsub` and
`ce_actorname` (dunning_events.codec), absent when no person acted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pydantic import BaseModel, ConfigDict, Field


class EventActor(BaseModel):
    model_config = ConfigDict(frozen=True)

    sub: str = Field(min_length=1, max_length=255, description="The identity provider's subject of the person")
    name: str = Field(min_length=1, max_length=300, description="The person's display name")

    def as_detail(self) -> dict[str, str]:
        """How a record people read (a timeline entry) names them: as dunning_kit.actor.Actor.as_detail does."""
        return {"sub": self.sub, "name": self.name}


_person: ContextVar[EventActor | None] = ContextVar("dunning_event_actor", default=None)


def acting_person() -> EventActor | None:
    """The person the current request acts for, if any."""
    return _person.get()


@contextmanager
def person_acting(actor: EventActor | None) -> Iterator[None]:
    """Events made inside this block carry `actor`."""
    token = _person.set(actor)
    try:
        yield
    finally:
        _person.reset(token)
