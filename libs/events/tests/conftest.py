"""A tiny service for plumbing tests: one effect table plus the outbox and inbox, in its own schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
from aiokafka import AIOKafkaProducer
from sqlalchemy import BigInteger, Column, Identity, Integer, MetaData, String, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dunning_events.kafka import ensure_topics, make_producer
from dunning_events.tables import inbox_table, outbox_table
from dunning_kit.db import make_engine, make_sessions
from dunning_kit.testing import BrokerBackend

SCHEMA = "plumbing"
metadata = MetaData()
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
# The effect: how many times each event's fact was applied (must stay 1 per event).
applied = Table(
    "applied",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("times", Integer, nullable=False),
)


# The order effects were applied in, per partition key (what a consumer relies on).
applied_log = Table(
    "applied_log",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("key", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
)


@dataclass
class PlumbingDb:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def times_applied(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(applied.select())).all()
        return {r.subject: r.times for r in rows}

    async def applied_in_order(self) -> dict[str, list[str]]:
        """Per key, the subjects in the order their effects were applied."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(applied_log.select().order_by(applied_log.c.seq))).all()
        order: dict[str, list[str]] = {}
        for r in rows:
            order.setdefault(r.key, []).append(r.subject)
        return order

    async def unpublished(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) or 0)


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[PlumbingDb]:
    engine = make_engine(database_url, SCHEMA, pool_size=5)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    yield PlumbingDb(engine, make_sessions(engine))
    await engine.dispose()


@pytest_asyncio.fixture
async def producer(broker: BrokerBackend) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(broker.bootstrap_servers)
    p = make_producer(broker.bootstrap_servers, "plumbing-test")
    await p.start()
    yield p
    await p.stop()
