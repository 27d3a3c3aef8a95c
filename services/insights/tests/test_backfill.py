"""Backfill and rebuild against a wire-level fake of the exports (the exports' shapes: cursor pages of ledger-sync's
customers and invoices, and of the events the other three services published): a model backfilled, then fed the
stream (with an overlap), equals the one that watched the stream from the start; a backfill that fails goes on
from its cursor; a rebuild reaches the same model again without the inbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_kit.clock import SimulatedClock
from dunning_kit.db import make_engine, make_sessions
from dunning_kit.testing import PostgresBackend
from insights.adapters import orm
from insights.service_layer.backfill import Backfiller, backfill_tenant, run_lock_key
from insights.service_layer.handlers import apply_envelopes

from . import factories as fx
from .export_fakes import KEY, FakeExports, phase_one, phase_two

READ_MODEL = [
    "customers", "invoices", "invoice_changes", "ar_daily", "sales_daily", "disputes", "promises", "plans",
    "steps", "step_invoices", "deliveries", "consent_revocations", "contact_holds",
]  # fmt: skip


@pytest_asyncio.fixture(scope="module")
async def sessions(pg_backend: PostgresBackend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(pg_backend.fresh_database(), orm.SCHEMA)
    try:
        yield make_sessions(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def tenants() -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    return f"stream-{run}", f"backfill-{run}"


def for_tenant(envelopes: list[Any], tenant: str) -> list[Any]:
    return [env.model_copy(update={"tenant_id": tenant}) for env in envelopes]


async def apply(sessions: async_sessionmaker[AsyncSession], envelopes: list[Any]) -> None:
    async with sessions() as session, session.begin():
        await apply_envelopes(session, envelopes)


async def model(sessions: async_sessionmaker[AsyncSession], tenant: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model table's rows of the tenant, without the tenant column (so two tenants compare)."""
    out = {}
    async with sessions() as session:
        for table in READ_MODEL:
            rows = await session.execute(text(f"SELECT * FROM {table} WHERE tenant_id = :t"), {"t": tenant})
            out[table] = sorted(tuple(r)[1:] for r in rows)
    return out


async def test_backfill_then_stream_equals_the_stream_from_the_start(
    sessions: async_sessionmaker[AsyncSession], tenants: tuple[str, str]
) -> None:
    watched, late = tenants
    for env in phase_one():  # one event per batch, as a quiet stream delivers them
        await apply(sessions, for_tenant([env], watched))
    fake = FakeExports(late, for_tenant(phase_one(), late))
    client = fake.client()
    await backfill_tenant(sessions, client, SimulatedClock(fx.at(13)), late, KEY, limit=1)
    # The stream as the late model's consumers read it: part of what the backfill brought (its retention), then on.
    overlap = [e for e in phase_one() if e.type in ("payment.applied", "payment.reversed", "invoice.voided",
                                                     "dunning.step.due", "promise.kept")]  # fmt: skip
    await apply(sessions, for_tenant(overlap, late))
    for env in phase_two():
        await apply(sessions, for_tenant([env], watched))
        await apply(sessions, for_tenant([env], late))
    backfilled = await model(sessions, late)
    assert backfilled["invoices"] and backfilled["steps"] and backfilled["promises"]
    assert backfilled == await model(sessions, watched)
    await client.close()


async def test_a_failed_backfill_goes_on_from_its_cursor(
    sessions: async_sessionmaker[AsyncSession], tenants: tuple[str, str]
) -> None:
    watched, late = tenants
    await apply(sessions, for_tenant(phase_one(), watched))
    fake = FakeExports(late, for_tenant(phase_one(), late))
    fake.fail_once.add(("/v1/exports/invoices", "1"))  # the second invoice page
    client = fake.client()
    backfiller = Backfiller(sessions, client, SimulatedClock(fx.at(13)), {late: KEY}, limit=1)
    await backfiller.start(late)
    await backfiller.running[late]
    status = {row["source"]: row for row in await backfiller.status(late)}
    assert status["ledger-sync.invoices"]["state"] == "failed" and "503" in status["ledger-sync.invoices"]["error"]
    assert status["ledger-sync.invoices"]["items"] == 1 and status["ledger-sync.customers"]["state"] == "finished"
    asked = fake.requests
    await backfiller.start(late)  # goes on: the customers are not read again, the invoices from page 2
    await backfiller.running[late]
    status = {row["source"]: row for row in await backfiller.status(late)}
    assert {row["state"] for row in status.values()} == {"finished"}
    assert status["ledger-sync.invoices"]["items"] == 2
    assert fake.requests - asked == 1 + 1 + 2 + 2  # invoices page 2, then 1 + 2 + 2 event pages
    assert await model(sessions, late) == await model(sessions, watched)

    # A rebuild deletes the model and reads everything again; the result is the same.
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE invoices SET balance = 12345 WHERE tenant_id = :t"), {"t": late})
    await backfiller.start(late, rebuild=True)
    await backfiller.running[late]
    assert await model(sessions, late) == await model(sessions, watched)
    await client.close()


async def test_a_page_that_cannot_be_applied_stops_the_backfill_and_the_page_applied_beside_it_waits(
    sessions: async_sessionmaker[AsyncSession], tenants: tuple[str, str]
) -> None:
    """Pages are applied two at a time: when one fails, the one after it (already writing) does not commit
    either, the cursor stays after the last page committed, and the next start goes on from there."""
    _, late = tenants
    fake = FakeExports(late, [])
    invoices = fake.lists[("ledger.test", "/v1/exports/invoices")]
    invoices += [{**invoices[0], "invoice_id": f"X{n}", "number": f"N-X{n}", "disputes": []} for n in range(3)]
    invoices[1]["total"] = "one hundred"  # page 2 of 5 (limit 1); page 3 is applied beside it
    client = fake.client()
    backfiller = Backfiller(sessions, client, SimulatedClock(fx.at(13)), {late: KEY}, limit=1)
    await backfiller.start(late)
    await backfiller.running[late]
    status = {row["source"]: row for row in await backfiller.status(late)}["ledger-sync.invoices"]
    assert status["state"] == "failed" and "could not be applied" in status["error"]
    assert status["items"] == 1

    async def held() -> list[str]:
        async with sessions() as session:
            rows = await session.execute(text("SELECT invoice_id FROM invoices WHERE tenant_id = :t"), {"t": late})
            return sorted(r.invoice_id for r in rows)

    assert await held() == ["A"]
    invoices[1]["total"] = "50.00"
    await backfiller.start(late)
    await backfiller.running[late]
    status = {row["source"]: row for row in await backfiller.status(late)}["ledger-sync.invoices"]
    assert status["state"] == "finished" and status["items"] == 5
    assert await held() == ["A", "B", "X0", "X1", "X2"]
    await client.close()


async def test_one_tenants_backfill_runs_in_one_replica_at_a_time(
    sessions: async_sessionmaker[AsyncSession], tenants: tuple[str, str]
) -> None:
    """A second replica asked to backfill a tenant while the first one does leaves it to the first (pages of two
    runs of one tenant must not be applied side by side)."""
    _, late = tenants
    fake = FakeExports(late, [])
    client = fake.client()
    first = Backfiller(sessions, client, SimulatedClock(fx.at(13)), {late: KEY}, limit=1)
    second = Backfiller(sessions, client, SimulatedClock(fx.at(13)), {late: KEY}, limit=1)
    async with sessions() as holder:
        conn = await holder.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        key = {"key": run_lock_key(late)}
        assert (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), key)).scalar()  # as the first's run
        await second.start(late)
        await second.running[late]
        assert fake.requests == 0  # it read nothing
        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), key)
    await first.start(late)
    await first.running[late]
    assert {row["state"] for row in await first.status(late)} == {"finished"}
    await client.close()


async def test_the_stream_during_a_rebuild_is_counted_once(
    sessions: async_sessionmaker[AsyncSession], tenants: tuple[str, str]
) -> None:
    """A payment the stream brings for an invoice the rebuild has not read yet, and which the page (read before
    it) does not list: kept, and counted in the balance when the invoice arrives."""
    watched, late = tenants
    history = phase_one()
    await apply(sessions, for_tenant([*history, *phase_two()[:1]], watched))
    fake = FakeExports(late, for_tenant(history, late))
    await apply(sessions, for_tenant(phase_two()[:1], late))  # the stream's payment, before the invoice is known
    client = fake.client()
    await backfill_tenant(sessions, client, SimulatedClock(fx.at(13)), late, KEY)
    backfilled = await model(sessions, late)
    watched_model = await model(sessions, watched)
    # The invoice's version stays the page's (older than the payment's); everything else is the same.
    version = [c.name for c in orm.invoices.columns].index("ledger_version") - 1
    for rows in (backfilled["invoices"], watched_model["invoices"]):
        rows[:] = [r[:version] + r[version + 1 :] for r in rows]
    assert backfilled == watched_model
    await client.close()
