"""The engine's real handlers on its two repositories: in memory (tests/in_memory_repository.py: no database, no
broker, a millisecond a scenario) and on PostgreSQL (adapters.repository.PostgresRepository, inside one
transaction rolled back at the end). What a ledger or promise event does to a case is decided by the domain's
rules either way; running every scenario on both keeps the fake honest. The engine end to end, through the
broker and its consumers: the other tests of this directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    Allocation,
    CreditNoteApplied,
    CustomerErased,
    DunningStepCancelled,
    InvoiceStatus,
    PaymentApplied,
    PaymentReversed,
    PromiseBroken,
    PromiseCreated,
)
from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import SimulatedClock
from dunning_kit.db import make_engine
from policy_engine.adapters import orm
from policy_engine.adapters import repository as sql
from policy_engine.adapters.repository import PostgresRepository
from policy_engine.domain.cases import Case
from policy_engine.domain.closure import ClosureReason
from policy_engine.domain.step_ids import step_id
from policy_engine.service_layer.handlers import Engine, EngineConfig
from policy_engine.service_layer.policy_book import PolicyBook
from policy_engine.service_layer.storage import DunningRepository

from .conftest import TENANT, customer, invoice
from .in_memory_repository import InMemoryRepository

MONDAY = datetime(2026, 3, 2, 9, tzinfo=UTC)


class RecordingPostgresRepository(PostgresRepository):
    """PostgreSQL, remembering the events it put into the outbox (read back without decoding the wire format)."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, OutboxWriter(orm.outbox), PolicyBook())
        self.added: list[Envelope[Any]] = []

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        self.added.extend(events)
        await super().add_events(events)


class World:
    """One repository and one clock; every event is applied by a fresh Engine, as each consumer batch is."""

    def __init__(self, repo: InMemoryRepository | RecordingPostgresRepository) -> None:
        self.repo = repo
        self.clock = SimulatedClock(MONDAY)

    async def apply(self, data: EventData) -> None:
        env: Envelope[Any] = new_event(data, tenant_id=TENANT, source="test", occurred_at=self.clock.now())
        repository: DunningRepository = self.repo
        engine = Engine.over(repository, self.clock, EngineConfig())
        handlers: dict[str, Callable[[Any], Awaitable[None]]] = {
            "customer.upserted": engine.on_customer_upserted,
            "invoice.created": engine.on_invoice_created,
            "payment.applied": engine.on_allocations,
            "credit_note.applied": engine.on_allocations,
            "payment.reversed": engine.on_payment_reversed,
            "customer.erased": engine.on_customer_erased,
            "promise.created": engine.on_promise_created,
            "promise.broken": engine.on_promise_broken,
        }
        await handlers[env.type](env)

    # ---- what the scenarios read, from whichever store
    async def case(self, invoice_id: str = "INV-1") -> Case:
        found: dict[str, Case] = (
            {invoice_id: self.repo.case(TENANT, invoice_id)}
            if isinstance(self.repo, InMemoryRepository)
            else await sql.load_cases(await self.repo.db(), TENANT, [invoice_id], lock=False)
        )
        return found[invoice_id]

    async def store(self, case: Case) -> None:
        await self.repo.save_cases([case])

    async def reasons(self, invoice_id: str = "INV-1") -> list[tuple[str, str]]:
        if isinstance(self.repo, InMemoryRepository):
            return [(e.kind, e.reason) for e in self.repo.entries(invoice_id)]
        rows = await (await self.repo.db()).fetch(
            "SELECT kind, reason FROM timeline WHERE invoice_id = $1 ORDER BY id", invoice_id
        )
        return [(r["kind"], r["reason"]) for r in rows]

    def events(self, type_: str) -> list[Any]:
        added = self.repo.outbox if isinstance(self.repo, InMemoryRepository) else self.repo.added
        return [e.data for e in added if e.type == type_]

    async def broken_promises(self, customer_id: str = "C-1") -> int:
        count: int
        if isinstance(self.repo, InMemoryRepository):
            count = self.repo.customers[(TENANT, customer_id)].broken_promise_count
            return count
        count = await (await self.repo.db()).fetchval(
            "SELECT broken_promise_count FROM customers WHERE tenant_id = $1 AND customer_id = $2", TENANT, customer_id
        )
        return count


@pytest.fixture(params=["in_memory", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """None: the in-memory repository; else a fresh migrated database (asked for only then: it costs a copy)."""
    return request.getfixturevalue("database_url") if request.param == "postgres" else None


@pytest_asyncio.fixture
async def world(store_url: str | None) -> AsyncIterator[World]:
    if store_url is None:
        yield World(InMemoryRepository())
        return
    engine = make_engine(store_url, orm.SCHEMA, pool_size=1)
    try:
        async with AsyncSession(engine) as session, session.begin() as tx:
            yield World(RecordingPostgresRepository(session))
            await tx.rollback()
    finally:
        await engine.dispose()


def allocation(balance_after: str, status: InvoiceStatus, version: int, amount: str = "1000.00") -> Allocation:
    return Allocation(
        invoice_id="INV-1", amount=Decimal(amount), invoice_balance_after=Decimal(balance_after),
        invoice_status_after=status, invoice_version_after=version,
    )  # fmt: skip


def paid_in_full(version: int = 2) -> PaymentApplied:
    return PaymentApplied(
        customer_id="C-1", payment_id="PAY-1", currency="EUR", amount=Decimal("1000.00"), received_on=MONDAY.date(),
        allocations=[allocation("0.00", "paid", version)], unapplied=Decimal(0),
    )  # fmt: skip


def reversed_payment(version: int = 3) -> PaymentReversed:
    return PaymentReversed(
        customer_id="C-1", payment_id="PAY-1", currency="EUR", amount=Decimal("1000.00"), reason="chargeback",
        allocations=[allocation("1000.00", "open", version)],
    )  # fmt: skip


async def opened(world: World, due_in_days: int = 10) -> None:
    await world.apply(customer())
    await world.apply(invoice("INV-1", due=MONDAY.date() + timedelta(days=due_in_days)))


async def test_an_invoice_created_gets_its_first_step_planned(world: World) -> None:
    await opened(world)

    case = await world.case()
    assert (case.status, case.next_step, case.closure) == ("open", "pre_due_reminder", None)
    assert case.next_at is not None and case.next_at > MONDAY
    assert [kind for kind, _ in await world.reasons()] == ["scheduled"]


async def test_a_payment_in_full_closes_the_case_as_paid_and_cancels_its_pending_step(world: World) -> None:
    await opened(world)
    await world.apply(paid_in_full())

    case = await world.case()
    assert (case.status, case.closure, case.closed_reason) == (
        "closed",
        ClosureReason.PAID,
        "cancelled: the invoice was paid",
    )
    assert (case.next_step, case.next_at) == (None, None)
    (cancelled,) = world.events("dunning.step.cancelled")
    assert isinstance(cancelled, DunningStepCancelled)
    assert cancelled.step_id == step_id(TENANT, "C-1", "default", "pre_due_reminder", "EUR", ["INV-1"])
    assert (cancelled.invoice_ids, cancelled.reason) == (["INV-1"], "cancelled: the invoice was paid")


async def test_a_reversed_payment_reopens_the_paid_case_and_plans_it_again(world: World) -> None:
    await opened(world)
    await world.apply(paid_in_full())
    world.clock.advance(timedelta(days=1))
    await world.apply(reversed_payment())

    case = await world.case()
    assert (case.status, case.closure, case.closed_reason) == ("open", None, None)
    assert case.balance_minor == 100_000
    assert case.next_step == "pre_due_reminder" and case.next_at is not None
    kind, reason = (await world.reasons())[-1]
    assert kind == "scheduled" and "payment PAY-1 reversed" in reason


async def test_a_reversal_reopens_a_case_credited_to_zero_too(world: World) -> None:
    await opened(world)
    await world.apply(CreditNoteApplied(
        customer_id="C-1", credit_note_id="CN-1", currency="EUR", total=Decimal("1000.00"), issued_on=MONDAY.date(),
        allocations=[allocation("0.00", "paid", 2)],
    ))  # fmt: skip
    case = await world.case()
    assert (case.closure, case.closed_reason) == (ClosureReason.CREDITED, "cancelled: the invoice was credited to zero")

    await world.apply(reversed_payment())
    case = await world.case()
    assert (case.status, case.closure) == ("open", None)


async def test_the_closure_decides_a_reopening_not_the_words_of_its_reason(world: World) -> None:
    """A hand-off to collections is final: rewording its text (here to say "unpaid") reopens nothing. The rule
    used to look for "paid" in the sentence."""
    await opened(world)
    stored = await world.case()
    stored.status, stored.closure, stored.next_step, stored.next_at = "closed", ClosureReason.HANDED_OFF, None, None
    stored.closed_reason = "handed off to collections: unpaid after the final notice"
    await world.store(stored)

    await world.apply(reversed_payment())

    case = await world.case()
    assert (case.status, case.closure) == ("closed", ClosureReason.HANDED_OFF)
    assert [kind for kind, _ in await world.reasons()] == ["scheduled"]  # nothing happened since the invoice arrived


async def test_a_reversal_never_reopens_the_cases_of_an_erased_customer(world: World) -> None:
    await opened(world)
    await world.apply(paid_in_full())
    await world.apply(CustomerErased(customer_id="C-1", erased_at=MONDAY, pseudonym="erased-1"))
    await world.apply(reversed_payment())

    case = await world.case()
    assert (case.status, case.closure) == ("closed", ClosureReason.ERASED)
    assert case.next_at is None


async def test_a_broken_promise_lifts_the_pause_and_re_escalates_to_a_firmer_step(world: World) -> None:
    await opened(world, due_in_days=-20)  # 20 days overdue: the gentle follow-ups are where it is
    before = (await world.case()).next_step
    deadline = MONDAY + timedelta(days=7)
    await world.apply(PromiseCreated(
        customer_id="C-1", promise_id="P-1", invoice_ids=["INV-1"], currency="EUR", amount=Decimal("1000.00"),
        promised_date=deadline.date(), deadline=deadline, recorded_by="collector",
    ))  # fmt: skip
    paused = await world.case()
    assert (paused.pause_reasons, paused.next_at) == (["promise"], None)

    world.clock.set(deadline + timedelta(hours=1))
    await world.apply(PromiseBroken(
        customer_id="C-1", promise_id="P-1", invoice_ids=["INV-1"], currency="EUR", amount=Decimal("1000.00"),
        received=Decimal("0.00"), shortfall=Decimal("1000.00"), partially_kept=False, deadline=deadline,
        broken_promise_count=1,
    ))  # fmt: skip

    case = await world.case()
    assert (case.pause_reasons, case.promise_ids) == ([], [])
    assert case.next_step != before and case.next_at is not None and case.next_at > world.clock.now()
    kind, reason = (await world.reasons())[-1]
    assert kind == "escalated" and reason.startswith("promise P-1 broken (shortfall 1000.00 EUR): escalating to ")
    assert await world.broken_promises() == 1
