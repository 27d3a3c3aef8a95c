"""Why PostgreSQL cannot be used, in one line naming DATABASE_URL (never its password).

A service starts its database-facing parts (timers, the outbox relay, the consumers) only once one connection
has worked. Until then readiness is false and the cause is logged once, and again only when it changes: a
wrong password or a missing role is one clear line, not a crash loop and not a stack trace per retry.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from dunning_kit.db import sqlstate

SETTING = "DATABASE_URL"
PROBE_TIMEOUT_S = 5.0

# SQLSTATEs that need someone to change a setting or a grant (https://www.postgresql.org/docs/current/errcodes-appendix.html)
_REFUSALS = {
    "28P01": "the password was refused",
    "28000": "the role may not log in (no such role, or pg_hba.conf refuses it)",
    "3D000": "the database does not exist",
    "42501": "the role lacks a privilege it needs",
}


def shown_url(url: str) -> str:
    """The URL as a log may show it: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL SQLAlchemy cannot parse is itself the cause; show no part of it
        return "(unparseable)"


def database_problem(exc: BaseException, url: str) -> tuple[str, int]:
    """One line saying why the database cannot be used, and the log level: WARNING while it may simply not be up
    yet (unreachable, still starting), ERROR when a setting is wrong."""
    cause = getattr(exc, "orig", None) or exc.__cause__ or exc
    detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    code = sqlstate(exc)
    where = f"{SETTING}={shown_url(url)}"
    if code in _REFUSALS:
        return f"the server refused the connection: {_REFUSALS[code]} ({detail}); check {where}", logging.ERROR
    if isinstance(cause, OSError | TimeoutError) or code == "57P03":  # 57P03: the server is starting up
        return f"the server is not reachable yet ({type(cause).__name__}: {detail}); {where}", logging.WARNING
    return f"{type(cause).__name__}: {detail}; check {where}", logging.ERROR


async def probe_database(engine: AsyncEngine) -> None:
    """One connection and one statement, as the service's own work would make; raises what went wrong."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
