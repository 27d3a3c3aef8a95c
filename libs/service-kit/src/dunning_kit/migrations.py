"""Alembic for every service: one async env, one schema and version table per service."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, pool, text
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(migrations_dir: Path, url: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(migrations_dir: Path, url: str, schema: str, revision: str = "head") -> None:
    """Bring the service's schema up to `revision` (creates the schema if needed)."""
    command.upgrade(alembic_config(migrations_dir, url, schema), revision)


def run_env(target_metadata: MetaData, default_schema: str) -> None:
    """Body of every service's migrations/env.py (online mode, asyncpg)."""
    cfg = context.config
    url = cfg.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url (DATABASE_URL) for migrations")
    schema = cfg.attributes.get("schema") or default_schema

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
        engine = create_async_engine(
            url, poolclass=pool.NullPool, connect_args={"server_settings": {"search_path": schema}}
        )
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.commit()
            await conn.run_sync(do_run)
            await conn.commit()
        await engine.dispose()

    asyncio.run(run_async())
