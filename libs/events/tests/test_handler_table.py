"""The one helper that turns a handler table into a consumer's apply function: what runs, in which order, set-wise
runs, layers, the batch's finish, and (through the consumer's inbox on real PostgreSQL) that a redelivered event
reaches no handler again."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events import topics
from dunning_events.consumer import BatchConsumer, ConsumedEvent
from dunning_events.envelope import Envelope, new_event
from dunning_events.events import CustomerUpserted, DisputeOpened, InvoiceCreated, PaymentApplied, PromiseKept
from dunning_events.handler_table import HandlerTable, consumer_apply, on, on_run, table_problems
from dunning_events.inbox import Inbox

from .conftest import PlumbingDb, applied, inbox


def _invoice(n: int, customer: str = "C-1") -> ConsumedEvent:
    env = new_event(
        InvoiceCreated(
            customer_id=customer, invoice_id=f"INV-{n}", number=str(n), currency="EUR", total=Decimal("10.00"),
            balance=Decimal("10.00"), issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31),
        ),
        tenant_id="acme", source="test", occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
    )  # fmt: skip
    return ConsumedEvent(env, topics.LEDGER, 0, n)


def _customer(n: int, customer: str = "C-1") -> ConsumedEvent:
    env = new_event(
        CustomerUpserted(customer_id=customer, name=f"Customer {n}"),
        tenant_id="acme", source="test", occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
    )  # fmt: skip
    return ConsumedEvent(env, topics.LEDGER, 0, 100 + n)


def _dispute(n: int, customer: str = "C-1") -> ConsumedEvent:
    env = new_event(
        DisputeOpened(customer_id=customer, invoice_id=f"INV-{n}"),
        tenant_id="acme", source="test", occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
    )  # fmt: skip
    return ConsumedEvent(env, topics.LEDGER, 0, 200 + n)


class Calls:
    """The context of one batch: what the handlers were called with, in order."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.log: list[tuple[str, list[str]]] = []
        self.noted: list[str] = []
        self.finished: list[int] = []

    async def invoices(self, envs: list[Envelope[InvoiceCreated]]) -> None:
        self.log.append(("invoices", [e.subject for e in envs]))

    async def customer(self, env: Envelope[CustomerUpserted]) -> None:
        self.log.append(("customer", [env.data.name]))


TABLE: HandlerTable[Calls] = HandlerTable(
    on_run(InvoiceCreated, Calls.invoices),
    on(CustomerUpserted, Calls.customer),
)

SEEN: list[Calls] = []


def _apply(**kwargs: Any) -> Any:
    def context(session: AsyncSession) -> Calls:
        SEEN.append(Calls(session))
        return SEEN[-1]

    async def finish(calls: Calls, events: list[ConsumedEvent]) -> None:
        calls.finished.append(len(events))

    return consumer_apply(TABLE, group="table-test", context=context, finish=finish, **kwargs)


async def test_a_run_of_consecutive_setwise_events_is_one_call_where_it_stands_and_unknown_types_are_skipped() -> None:
    SEEN.clear()
    batch = [_customer(1), _invoice(1), _invoice(2), _dispute(9), _invoice(3), _customer(2), _invoice(4)]
    await _apply()(cast(AsyncSession, "session"), batch)
    (calls,) = SEEN
    assert calls.session == "session"
    # The dispute is in no table: skipped, and it does not end the run of invoices around it.
    assert calls.log == [
        ("customer", ["Customer 1"]),
        ("invoices", ["INV-1", "INV-2", "INV-3"]),
        ("customer", ["Customer 2"]),
        ("invoices", ["INV-4"]),
    ]
    assert calls.finished == [len(batch)], "finish sees the whole batch once, after the handlers"


async def test_in_layers_the_one_by_one_events_come_first_then_each_setwise_type_once() -> None:
    SEEN.clear()
    a, b, c, d = _invoice(1), _customer(1, "C-2"), _invoice(2, "C-3"), _customer(2, "C-1")

    def two_layers(events: list[ConsumedEvent]) -> list[list[ConsumedEvent]]:
        return [events[:3], events[3:]]

    await _apply(layers=two_layers)(cast(AsyncSession, None), [a, b, c, d])
    assert SEEN[0].log == [
        ("customer", ["Customer 1"]),
        ("invoices", ["INV-1", "INV-2"]),  # not consecutive, but in one layer: one set-wise call
        ("customer", ["Customer 2"]),
    ]


async def test_every_event_of_a_run_enters_its_own_span_before_the_run_is_applied() -> None:
    SEEN.clear()

    def note(calls: Calls, env: Envelope[Any]) -> None:
        calls.noted.append(env.subject)
        assert not calls.log, "noted before the run is applied"

    await _apply(in_span=note)(cast(AsyncSession, None), [_invoice(1), _invoice(2), _invoice(3)])
    assert sorted(SEEN[0].noted) == ["INV-1", "INV-2", "INV-3"]
    assert SEEN[0].log == [("invoices", ["INV-1", "INV-2", "INV-3"])]


def test_a_table_names_an_event_class_once_and_says_which_keys_its_consumer_never_reads() -> None:
    async def kept(calls: Calls, env: Envelope[PromiseKept]) -> None: ...

    with pytest.raises(ValueError, match="InvoiceCreated appears twice"):
        HandlerTable(on_run(InvoiceCreated, Calls.invoices), on_run(InvoiceCreated, Calls.invoices))
    table: HandlerTable[Calls] = HandlerTable(on(CustomerUpserted, Calls.customer), on(PromiseKept, kept))
    assert table.topics == {topics.LEDGER, topics.PROMISES}
    assert table.by_type.keys() == {"customer.upserted", "promise.kept"}
    assert table_problems(table, [topics.LEDGER, topics.PROMISES]) == []
    assert table_problems(table, [topics.LEDGER]) == [
        f"PromiseKept travels on {topics.PROMISES}, which no consumer of this table reads"
    ]

    class Unpublished(PaymentApplied):
        event_type = "payment.imagined"

    async def imagined(calls: Calls, env: Envelope[Unpublished]) -> None: ...

    assert table_problems(HandlerTable(on(Unpublished, imagined)), [topics.LEDGER]) == [
        "Unpublished is not a known event type"
    ]


async def test_a_redelivered_event_reaches_no_handler_again_the_inbox_drops_it(db: PlumbingDb) -> None:
    async def count(session: AsyncSession, env: Envelope[InvoiceCreated]) -> None:
        stmt = insert(applied).values(subject=f"table:{env.subject}", times=1)
        await session.execute(
            stmt.on_conflict_do_update(index_elements=[applied.c.subject], set_={"times": applied.c.times + 1})
        )

    counting: HandlerTable[AsyncSession] = HandlerTable(on(InvoiceCreated, count))
    consumer = BatchConsumer(
        group="table-test",
        topics=[topics.LEDGER],
        bootstrap_servers="127.0.0.1:1",  # never contacted: apply() is the database side only
        session_factory=db.sessions,
        inbox=Inbox(inbox, "table-test"),
        handler=consumer_apply(counting, group="table-test", context=lambda session: session),
        producer=cast(AIOKafkaProducer, None),
    )
    first, second = _invoice(71), _invoice(72)
    await consumer.apply([first])
    await consumer.apply([first, second])  # the first again (a redelivery), with a new one
    times = await db.times_applied()
    assert (times["table:INV-71"], times["table:INV-72"]) == (1, 1)
