"""Settlements are never stuck behind bulk work: the relay's and the consumers' priority lanes, on the real broker
and real PostgreSQL, and each customer's order kept through both."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events import topics
from dunning_events.codec import decode
from dunning_events.consumer import BatchConsumer, ConsumedEvent
from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import Allocation, InvoiceCreated, PaymentApplied
from dunning_events.inbox import Inbox
from dunning_events.lane import PriorityLane
from dunning_events.outbox import (
    _HEAD,
    _LANE,
    _LANE_LOCK_KEY,
    _RELAY_LOCK_KEY,
    PRIORITY_HEADER,
    OutboxRelay,
    OutboxWriter,
)
from dunning_events.topics import partition_key
from dunning_kit.testing import TEST_SESSION_TIMEOUT_MS, BrokerBackend, poll_until

from .conftest import PlumbingDb, applied, applied_log, inbox, outbox
from .test_plumbing import read_topic

AT = datetime(2026, 3, 10, tzinfo=UTC)


def invoice(tenant: str, customer: str, n: int) -> Envelope[EventData]:
    return new_event(
        InvoiceCreated(
            customer_id=customer, invoice_id=f"INV-{tenant}-{n}", number=f"{n:05d}", currency="EUR",
            total=Decimal("100.00"), balance=Decimal("100.00"), issue_date=date(2026, 3, 1),
            due_date=date(2026, 3, 31),
        ),
        tenant_id=tenant, source="test", occurred_at=AT,
    )  # fmt: skip


def payment(tenant: str, customer: str, invoice_id: str) -> Envelope[EventData]:
    return new_event(
        PaymentApplied(
            customer_id=customer, payment_id=f"PAY-{uuid.uuid4().hex[:8]}", currency="EUR", amount=Decimal("100.00"),
            received_on=date(2026, 3, 10), unapplied=Decimal(0),
            allocations=[Allocation(invoice_id=invoice_id, amount=Decimal("100.00"),
                                    invoice_balance_after=Decimal(0), invoice_status_after="paid")],
        ),
        tenant_id=tenant, source="test", occurred_at=AT,
    )  # fmt: skip


def key_of(ev: Envelope[Any]) -> str:
    return partition_key(ev.tenant_id, ev.customer_id)


class Ledger:
    """acme's bulk import in the outbox, with settlements around it committed in this order:

    - acme's backlog of invoice.created (200 customers), C-late's invoice.created in its middle;
    - C-late's payment (its invoice is still in the backlog: it must wait for it);
    - globex G-1's payment (another tenant, nothing of its own before it);
    - globex G-2's invoice.created and payment, committed together (in order, within one lane round or none);
    - acme C-free's payment (the importing tenant's own customer, nothing of its own before it).
    """

    def __init__(self, backlog: int, clear_customer: str = "G-1") -> None:
        self.backlog = [invoice("acme", f"C-{n % 200}", n) for n in range(backlog)]
        self.late_invoice = invoice("acme", "C-late", backlog)
        self.late_payment = payment("acme", "C-late", self.late_invoice.subject)
        self.clear = payment("globex", clear_customer, "INV-G-1")
        self.g2_invoice = invoice("globex", "G-2", 1)
        self.g2_payment = payment("globex", "G-2", self.g2_invoice.subject)
        self.own_clear = payment("acme", "C-free", "INV-C-free")
        half = backlog // 2
        self.commits: list[list[Envelope[Any]]] = [
            self.backlog[:half], [self.late_invoice], self.backlog[half:], [self.late_payment], [self.clear],
            [self.g2_invoice, self.g2_payment], [self.own_clear],
        ]  # fmt: skip
        self.events = [ev for commit in self.commits for ev in commit]

    async def write(self, db: PlumbingDb) -> None:
        for events in self.commits:
            async with db.sessions() as session, session.begin():
                await OutboxWriter(outbox).add(session, events)

    def order_per_key(self) -> dict[str, list[str]]:
        order: dict[str, list[str]] = {}
        for ev in self.events:
            order.setdefault(key_of(ev), []).append(ev.subject)
        return order


async def published(db: PlumbingDb, events: list[Envelope[Any]]) -> set[uuid.UUID]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_id FROM outbox WHERE published_at IS NOT NULL AND event_id = ANY(:ids)"),
            {"ids": [ev.id for ev in events]},
        )
        return {r[0] for r in rows}


# ---------------------------------------------------------------- the relay


# Run alone (make test's second part): it measures how far the relay's head gets while its lane publishes, and
# six parallel workers on two cores starve the lane's task enough to fail it (1,500 of 3,000 rows, once).
@pytest.mark.slow
async def test_a_settlement_goes_out_ahead_of_another_tenants_backlog_and_every_key_keeps_its_order(
    db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer
) -> None:
    ledger = Ledger(backlog=3000)
    await ledger.write(db)
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=producer, batch_size=100, poll_interval=0.05)
    relay.start()  # as in a service: the head and the lane publishing side by side
    try:
        clear = [ledger.clear, ledger.own_clear]
        await poll_until(
            lambda: _all_in(published(db, clear), clear), timeout=20, interval=0.005, what="the clear settlements"
        )
        backlog_out = len(await published(db, ledger.backlog))
        late_out = await published(db, [ledger.late_invoice, ledger.late_payment])
    finally:
        await relay.stop()
    assert backlog_out < len(ledger.backlog) // 2, f"{backlog_out} backlog rows went out before the settlements"
    assert late_out == set(), "C-late's invoice is in the unpublished half: neither it nor its payment is out"

    seen = await read_topic(broker.bootstrap_servers, topics.LEDGER, expect=len(ledger.events))
    assert len(seen) == len(ledger.events), "each row published once"
    arrived: dict[str, list[str]] = {}
    for value, headers in seen:
        ev = decode(headers, value)
        arrived.setdefault(key_of(ev), []).append(ev.subject)
        assert (headers.get(PRIORITY_HEADER[0]) == PRIORITY_HEADER[1]) == ev.data.priority, ev.type
    assert arrived == ledger.order_per_key(), "every customer's events arrive in commit order"


async def _all_in(found: Any, events: list[Envelope[Any]]) -> bool:
    return {ev.id for ev in events} <= await found


async def test_the_lane_takes_only_settlements_whose_customer_has_nothing_earlier_unpublished(
    db: PlumbingDb, producer: AIOKafkaProducer
) -> None:
    ledger = Ledger(backlog=300)
    await ledger.write(db)
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=producer, batch_size=100)
    assert await relay.publish_lane() == 2
    assert await published(db, ledger.events) == {ledger.clear.id, ledger.own_clear.id}
    # The head publishes the rest in id order, leaving out what the lane published; settlements whose customer's
    # earlier rows the head has published meanwhile may go by the lane (never twice).
    total = 2
    while n := await relay.publish_batch() + await relay.publish_lane():
        total += n
    assert total == len(ledger.events)
    assert await published(db, ledger.events) == {ev.id for ev in ledger.events}


async def test_the_relays_rounds_are_index_probes_with_and_without_statistics(
    db: PlumbingDb, producer: AIOKafkaProducer
) -> None:
    # A backlog that grew faster than autovacuum analyzes it is when a plan that hashes the whole backlog (once per
    # lane round, i.e. once per payment) would hurt most.
    ledger = Ledger(backlog=5000)
    await ledger.write(db)
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=producer)
    for stats in ("fresh", "analyzed"):
        if stats == "analyzed":
            async with db.engine.begin() as conn:
                await conn.execute(text("ANALYZE outbox"))
        # In the relay's own transactions, as its rounds run them.
        async with relay._leading(_LANE_LOCK_KEY) as apg:
            lane = "\n".join(r[0] for r in await apg.fetch("EXPLAIN " + _LANE.format(name="outbox"), 1000))
        async with relay._leading(_RELAY_LOCK_KEY) as apg:
            head = "\n".join(r[0] for r in await apg.fetch("EXPLAIN " + _HEAD.format(name="outbox"), 1000))
        assert "Seq Scan" not in lane + head and "Hash" not in lane, f"{stats}:\n{lane}\n{head}"
        assert "ix_outbox_unpublished_priority" in lane and "ix_outbox_unpublished_key" in lane, lane
        assert "Index Scan using ix_outbox_unpublished on" in head and "Sort" not in head, head


async def test_a_settlement_committed_on_another_replica_wakes_the_lanes_publisher_at_once(
    db: PlumbingDb, producer: AIOKafkaProducer
) -> None:
    # The lane's publisher polls only every 30 s here: only the writer's notification can wake it in time.
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=producer, poll_interval=30)
    relay.start()
    try:

        async def listening() -> bool:
            async with db.engine.connect() as conn:
                return bool(await conn.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN \"dunning_outbox_lane_plumbing\"'"
                )))  # fmt: skip

        await poll_until(listening, timeout=10, what="the relay to listen")
        settlement = payment("globex", "G-1", "INV-G-1")
        async with db.sessions() as session, session.begin():
            await OutboxWriter(outbox).add(session, [settlement])  # a writer wired to no relay of this process
        await poll_until(lambda: _all_in(published(db, [settlement]), [settlement]), timeout=10, what="published")
    finally:
        await relay.stop()


async def test_a_settlement_waiting_for_its_customers_invoice_goes_as_soon_as_the_head_publishes_it(
    db: PlumbingDb, producer: AIOKafkaProducer
) -> None:
    # C-late's invoice is near the front of a long backlog, its payment at the end: the head publishing the invoice
    # wakes the lane (nothing else would in time: both poll every 30 s here), long before the head reaches the end.
    backlog = [invoice("acme", f"C-{n % 200}", n) for n in range(3000)]
    late_invoice = invoice("acme", "C-late", 3000)
    late_payment = payment("acme", "C-late", late_invoice.subject)
    for events in (backlog[:50], [late_invoice], backlog[50:], [late_payment]):
        async with db.sessions() as session, session.begin():
            await OutboxWriter(outbox).add(session, events)
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=producer, batch_size=100, poll_interval=30)
    relay.start()
    try:
        await poll_until(
            lambda: _all_in(published(db, [late_payment]), [late_payment]), timeout=20, interval=0.005,
            what="C-late's payment",
        )  # fmt: skip
        backlog_out = len(await published(db, backlog))
    finally:
        await relay.stop()
    assert backlog_out < len(backlog) // 2, f"{backlog_out} backlog rows went out before the payment"


async def test_two_replicas_lanes_publishing_a_stream_of_settlements_keep_each_customers_order(
    db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer
) -> None:
    relays = [
        OutboxRelay(engine=db.engine, table=outbox, producer=producer, batch_size=20, poll_interval=0.05)
        for _ in range(2)
    ]
    for relay in relays:
        relay.start()
    settlements: list[Envelope[Any]] = []
    try:
        for n in range(30):  # commits arriving while both lanes publish: 10 customers, 10 settlements a commit
            batch = [payment("globex", f"G-{(n + k) % 10}", f"INV-{n}-{k}") for k in range(10)]
            async with db.sessions() as session, session.begin():
                await OutboxWriter(outbox, on_priority_commit=relays[n % 2].wake_lane).add(session, batch)
            settlements.extend(batch)
        await poll_until(lambda: _all_in(published(db, settlements), settlements), timeout=30, what="all published")
    finally:
        await asyncio.gather(*(relay.stop() for relay in relays))
    seen = await read_topic(broker.bootstrap_servers, topics.LEDGER, expect=len(settlements))
    arrived: dict[str, list[str]] = {}
    for value, headers in seen:
        ev = decode(headers, value)
        arrived.setdefault(key_of(ev), []).append(ev.subject)
    expected: dict[str, list[str]] = {}
    for ev in settlements:
        expected.setdefault(key_of(ev), []).append(ev.subject)
    assert arrived == expected


# ---------------------------------------------------------------- the consumers


async def test_a_group_applies_a_settlement_ahead_of_its_backlog_but_never_ahead_of_its_customers_invoice(
    db: PlumbingDb, broker: BrokerBackend, producer: AIOKafkaProducer
) -> None:
    # G-1's payment and C-late's payment on one partition, C-late's first: when the lane has applied G-1's, it
    # has already judged C-late's (blocked: C-late's invoice is in the group's backlog).
    partitions = sorted(await producer.partitions_for(topics.LEDGER))

    def partition(key: str) -> int:
        return int(DefaultPartitioner()(key.encode(), partitions, partitions))

    clear_customer = next(f"G-{i}" for i in range(1, 1000) if partition(f"globex:G-{i}") == partition("acme:C-late"))
    ledger = Ledger(backlog=1500, clear_customer=clear_customer)
    await ledger.write(db)
    relay = OutboxRelay(engine=db.engine, table=outbox, producer=producer)
    while await relay.publish_batch():  # all on the broker in id order, the settlements marked
        pass

    bulk_may_go = asyncio.Event()  # the group's backlog is slow: it applies nothing until the test says so
    handed_ahead: set[str] = set()

    async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        for ev in events:
            if ev.ahead:  # (a handler keeping positions of its own must not count these)
                handed_ahead.add(ev.envelope.subject)
            if ev.type == "invoice.created":
                await bulk_may_go.wait()
            await session.execute(applied_log.insert().values(key=key_of(ev.envelope), subject=ev.envelope.subject))
            stmt = insert(applied).values(subject=ev.envelope.subject, times=1)
            await session.execute(
                stmt.on_conflict_do_update(index_elements=[applied.c.subject], set_={"times": applied.c.times + 1})
            )

    group = BatchConsumer(
        group="priority-test", topics=[topics.LEDGER], bootstrap_servers=broker.bootstrap_servers,
        session_factory=db.sessions, inbox=Inbox(inbox, "priority-test"), handler=apply, producer=producer,
        max_records=100,
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
    )  # fmt: skip
    lane = PriorityLane(group)
    group.start()
    lane.start()
    try:
        clear = [ledger.clear, ledger.own_clear]
        await poll_until(lambda: _applied(db, clear), timeout=30, what="the clear settlements applied ahead")
        ahead = await db.times_applied()
        bulk_may_go.set()
        await poll_until(lambda: _applied(db, ledger.events), timeout=60, what="every event applied")
        await poll_until(lambda: _caught_up(group), timeout=20, what="the group's offsets committed")
    finally:
        bulk_may_go.set()
        await lane.stop()
        await group.stop()
    assert set(ahead) == {ev.subject for ev in clear}, "only the clear settlements went ahead of the backlog"
    assert handed_ahead == set(ahead), "the handler knows which events came ahead of the group's order"
    assert await db.times_applied() == {ev.subject: 1 for ev in ledger.events}, "each applied once (inbox)"
    order = await db.applied_in_order()
    assert order == ledger.order_per_key(), "every customer's events applied in their order"


async def _applied(db: PlumbingDb, events: list[Envelope[Any]]) -> bool:
    return {ev.subject for ev in events} <= set(await db.times_applied())


async def _caught_up(group: BatchConsumer) -> bool:
    return await group.lag() == 0


def _idle_group() -> BatchConsumer:
    """A group that is never started: only its give-way hook and apply are exercised."""
    nothing: Any = None
    return BatchConsumer(
        group="g", topics=[topics.LEDGER], bootstrap_servers="unused:9092", session_factory=nothing,
        inbox=nothing, handler=nothing, producer=nothing,
    )  # fmt: skip


async def test_the_group_gives_way_until_the_lane_has_applied_what_it_found() -> None:
    group = _idle_group()
    lane = PriorityLane(group)
    release, applied_by_lane = asyncio.Event(), asyncio.Event()

    async def lane_apply(events: list[ConsumedEvent]) -> None:
        await release.wait()
        applied_by_lane.set()

    group.apply = lane_apply  # type: ignore[method-assign]
    assert group.give_way is not None
    await asyncio.wait_for(group.give_way(), timeout=1)  # nothing found: no wait at all

    found: Any = ConsumedEvent(None, topics.LEDGER, 0, 7, [], ahead=True)  # type: ignore[arg-type]
    lane._ready.append((b"globex:G-1", found))
    lane._idle.clear()
    lane._has_ready.set()
    applier = asyncio.create_task(lane._apply_ready())
    giving_way = asyncio.create_task(group.give_way())
    try:
        done, _ = await asyncio.wait({giving_way}, timeout=0.2)
        assert not done, "the group's next batch waits while the lane applies a settlement"
        release.set()
        await asyncio.wait_for(giving_way, timeout=5)
        assert applied_by_lane.is_set()
    finally:
        applier.cancel()
        await asyncio.gather(applier, return_exceptions=True)


async def test_a_stuck_lane_holds_the_group_up_only_briefly(monkeypatch: Any) -> None:
    import dunning_events.lane as lane_module

    monkeypatch.setattr(lane_module, "GIVE_WAY_AT_MOST_S", 0.05)
    group = _idle_group()
    lane = PriorityLane(group)
    lane._idle.clear()  # found something, never applies it (its database is away)
    assert group.give_way is not None
    await asyncio.wait_for(group.give_way(), timeout=2)
    await lane.stop()
    await asyncio.wait_for(group.give_way(), timeout=0.01)  # a stopped lane holds up nothing
