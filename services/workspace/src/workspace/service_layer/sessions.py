"""Server-side sessions: a sign-in opens one, every request finds it by the cookie and keeps it alive, sign-out
or time ends it.

The cookie holds 32 random bytes; the table keeps only their SHA-256, so a copy of the table opens no session.
A session ends `workspace_session_hours` after sign-in whatever happens, or after `workspace_session_idle_minutes`
without a request. Its CSRF token is made with it and checked on every form (entrypoints/people.py).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_kit.clock import Clock
from workspace.adapters.orm import people_sessions
from workspace.domain.people import Person, Role


@dataclass(frozen=True)
class SignedIn:
    """The person behind a request, with their session's CSRF token."""

    person: Person
    csrf_token: str
    session_hash: str
    id_token: str | None = None


def _hash(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


class SessionBook:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, lifetime: timedelta, idle: timedelta
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.lifetime = lifetime
        self.idle = idle

    async def open(self, person: Person, *, id_token: str | None = None) -> tuple[str, SignedIn]:
        """A new session for `person`: the cookie value to set, and the session."""
        value = secrets.token_urlsafe(32)
        now = self.clock.now()
        signed = SignedIn(person, secrets.token_urlsafe(32), _hash(value), id_token)
        async with self.sessions() as db, db.begin():
            await db.execute(
                people_sessions.insert().values(
                    session_hash=signed.session_hash, subject=person.subject, name=person.name, email=person.email,
                    tenant_id=person.tenant_id, role=person.role.name, csrf_token=signed.csrf_token,
                    id_token=id_token, created_at=now, last_seen_at=now, expires_at=now + self.lifetime,
                )
            )  # fmt: skip
        return value, signed

    async def find(self, cookie_value: str) -> SignedIn | None:
        """The live session the cookie names (and it is kept alive), or None: unknown, ended, idle too long."""
        if not cookie_value or len(cookie_value) > 100:
            return None
        now = self.clock.now()
        key = _hash(cookie_value)
        async with self.sessions() as db, db.begin():
            row = (await db.execute(select(people_sessions).where(people_sessions.c.session_hash == key))).first()
            if row is None:
                return None
            if now >= row.expires_at or now - row.last_seen_at >= self.idle:
                await db.execute(delete(people_sessions).where(people_sessions.c.session_hash == key))
                return None
            role = Role.parse(row.role)
            if role is None:
                return None
            if now - row.last_seen_at >= timedelta(seconds=30):  # one write per half minute, not per request
                await db.execute(
                    update(people_sessions).where(people_sessions.c.session_hash == key).values(last_seen_at=now)
                )
        person = Person(row.subject, row.name, row.email, row.tenant_id, role)
        return SignedIn(person, row.csrf_token, key, row.id_token)

    async def close(self, session_hash: str) -> None:
        async with self.sessions() as db, db.begin():
            await db.execute(delete(people_sessions).where(people_sessions.c.session_hash == session_hash))

    async def prune(self, now: datetime | None = None) -> int:
        """Delete sessions past their end (housekeeping)."""
        now = now or self.clock.now()
        async with self.sessions() as db, db.begin():
            result = await db.execute(delete(people_sessions).where(people_sessions.c.expires_at <= now))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
