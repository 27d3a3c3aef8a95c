"""Alembic for every service: one async env, one schema and version table per service.

A migration waits at most `lock_timeout` for each lock it takes. ALTER TABLE needs an exclusive lock, and
while it waits in the queue every later statement on that table queues behind it: a migration stuck behind
one long transaction would stop the running services. With the timeout it fails instead (the Job retries);
statement_timeout is off, since building an index on a large table may rightly take long.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATION_LOCK_TIMEOUT_MS = 5_000


def alembic_config(
    migrations_dir: Path, url: str, schema: str, lock_timeout_ms: int = MIGRATION_LOCK_TIMEOUT_MS
) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["schema"] = schema
    cfg.attributes["lock_timeout_ms"] = lock_timeout_ms
    return cfg


def upgrade(
    migrations_dir: Path,
    url: str,
    schema: str,
    revision: str = "head",
    lock_timeout_ms: int = MIGRATION_LOCK_TIMEOUT_MS,
) -> None:
    """Bring the service's schema up to `revision` (creates the schema if needed); each lock is waited for
    at most `lock_timeout_ms` (0 = forever)."""
    command.upgrade(alembic_config(migrations_dir, url, schema, lock_timeout_ms), revision)


def run_env(target_metadata: MetaData, default_schema: str) -> None:
    """Body of every service's migrations/env.py (online mode, asyncpg)."""
    cfg = context.config
    url = cfg.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url (DATABASE_URL) for migrations")
    schema = cfg.attributes.get("schema") or default_schema
    lock_timeout_ms = int(cfg.attributes.get("lock_timeout_ms", MIGRATION_LOCK_TIMEOUT_MS))

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table="alembic_version",
            version_table_schema=schema,
            include_schemas=False,
            # alembic's own version table lives in the schema too; autogenerate must leave it alone.
            include_object=lambda obj, name, type_, reflected, compare_to: name != "alembic_version",
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        server_settings = {"search_path": schema, "lock_timeout": f"{lock_timeout_ms}ms", "statement_timeout": "0"}
        engine = create_async_engine(url, poolclass=pool.NullPool, connect_args={"server_settings": server_settings})
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.commit()
            await conn.run_sync(do_run)
            await conn.commit()
        await engine.dispose()

    asyncio.run(run_async())
