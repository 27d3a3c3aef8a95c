"""Database engine and sessions: one schema per service, selected by search_path, every statement bounded.

statement_timeout and lock_timeout travel in the connection's startup parameters, so they hold for every
connection of the pool, the raw asyncpg statements included: a runaway query or a lock held by a stuck
transaction costs one request (503, see `timed_out`) instead of a pool of connections waiting forever.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
DEFAULT_LOCK_TIMEOUT_MS = 10_000

LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired
QUERY_CANCELED = "57014"  # statement_timeout expired


def make_engine(
    url: str,
    schema: str,
    pool_size: int = 10,
    *,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "server_settings": {
                "search_path": schema,
                "application_name": schema,
                "statement_timeout": f"{statement_timeout_ms}ms",
                "lock_timeout": f"{lock_timeout_ms}ms",
            }
        },
    )


def make_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL error code behind an exception (SQLAlchemy's wrapper or asyncpg's own)."""
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return None


def timed_out(exc: BaseException) -> bool:
    """The statement was cancelled by statement_timeout or gave up waiting for a lock: try again later."""
    return sqlstate(exc) in (LOCK_NOT_AVAILABLE, QUERY_CANCELED)
