"""Every service connection carries statement_timeout and lock_timeout, and migrations a lock_timeout: a runaway
statement or a lock held by someone else costs one request (503, Retry-After), never the service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dunning_events.consumer import is_transient
from dunning_kit.clock import SimulatedClock
from dunning_kit.db import sqlstate
from dunning_kit.migrations import upgrade
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, RunningService, start_service

TIMEOUT_MS = 500


def raw_url(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


@pytest_asyncio.fixture
async def ledger(database_url: str, broker: BrokerBackend, clock: SimulatedClock) -> AsyncIterator[RunningService]:
    svc = await start_service(
        spec("ledger-sync"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock,
        overrides={"db_statement_timeout_ms": TIMEOUT_MS, "db_lock_timeout_ms": TIMEOUT_MS},
    )  # fmt: skip
    try:
        yield svc
    finally:
        await svc.stop()


async def test_a_statement_past_the_timeout_is_cancelled_and_the_service_keeps_serving(
    ledger: RunningService,
) -> None:
    started = time.monotonic()
    with pytest.raises(DBAPIError) as caught:
        async with ledger.runtime.engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(10)"))
    assert sqlstate(caught.value) == "57014", caught.value
    assert time.monotonic() - started < 5, "cancelled by the server at the timeout, not after the sleep"
    async with ledger.client() as api:
        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/readyz")).status_code == 200
        assert (await api.get("/v1/customers")).status_code == 200


async def test_a_write_waiting_on_a_held_lock_answers_503_and_succeeds_once_the_lock_is_gone(
    ledger: RunningService, database_url: str
) -> None:
    body = {"external_account": "9130350000000001", "config": {"client_id": "app"}}
    holder = await asyncpg.connect(raw_url(database_url))
    try:
        async with ledger.client("acme-admin-key") as admin:
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("LOCK TABLE ledger_sync.connections IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            busy = await admin.put("/v1/connectors/quickbooks", json=body, timeout=10)
            assert busy.status_code == 503, busy.text
            assert time.monotonic() - started < 5
            assert busy.headers["retry-after"] == "1"
            assert busy.headers["content-type"] == "application/problem+json"
            assert (await admin.get("/healthz")).status_code == 200
            await transaction.rollback()
            assert (await admin.put("/v1/connectors/quickbooks", json=body)).status_code == 200
    finally:
        await holder.close()


def test_a_lock_timeout_is_retried_by_consumers_not_dead_lettered() -> None:
    class LockNotAvailable(Exception):
        sqlstate = "55P03"

    assert is_transient(DBAPIError("UPDATE ...", {}, LockNotAvailable("canceling statement due to lock timeout")))


MIGRATION_ENV = """
from sqlalchemy import MetaData
from dunning_kit.migrations import run_env
run_env(MetaData(), "lock_probe")
"""
MIGRATION = """
from alembic import op
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
def upgrade():
    op.execute("ALTER TABLE public.busy_table ADD COLUMN added integer")
def downgrade():
    pass
"""


async def test_a_migration_behind_a_long_transaction_gives_up_instead_of_queueing_everyone(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(MIGRATION_ENV)
    (tmp_path / "versions" / "0001_probe.py").write_text(MIGRATION)
    reader = await asyncpg.connect(raw_url(database_url))
    try:
        await reader.execute("CREATE TABLE public.busy_table (id int)")
        transaction = reader.transaction()
        await transaction.start()
        await reader.execute("SELECT * FROM public.busy_table")  # a long report holding ACCESS SHARE
        started = time.monotonic()
        migration = asyncio.create_task(asyncio.to_thread(upgrade, tmp_path, database_url, "lock_probe"))
        try:
            with pytest.raises(DBAPIError, match="lock timeout"):
                await asyncio.wait_for(asyncio.shield(migration), timeout=20)
        finally:
            await transaction.rollback()  # a migration still waiting (no timeout) can finish now
            await asyncio.gather(migration, return_exceptions=True)
        assert time.monotonic() - started < 15
    finally:
        await reader.close()
