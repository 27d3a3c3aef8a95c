"""People who sign in to the workspace and what their role lets them do.

Roles are ordered: each one may do everything the one before it may. A viewer sees; a collector works cases
(notes, calls, promises, pauses, one-off reminders, disputes, worklist items); a manager changes policies and
templates; an admin runs operations (dead letters, connectors) and sees the audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Role(IntEnum):
    viewer = 1
    collector = 2
    manager = 3
    admin = 4

    @classmethod
    def parse(cls, name: str) -> Role | None:
        try:
            return cls[name.strip().lower()]
        except KeyError:
            return None


@dataclass(frozen=True)
class Person:
    """A signed-in person: the identity provider's subject, how to call them, the tenant they work for."""

    subject: str
    name: str
    email: str
    tenant_id: str
    role: Role

    def may(self, needed: Role) -> bool:
        return self.role >= needed


def highest_role(names: list[str]) -> Role | None:
    """The highest known role among `names` (unknown names are ignored: a provider's other groups)."""
    roles = [r for r in (Role.parse(n) for n in names) if r is not None]
    return max(roles) if roles else None
