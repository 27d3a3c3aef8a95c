"""The engine's real handlers on an in-memory repository (no database, no broker): what a ledger or promise event
does to a case, decided by the domain's rules. The same handlers on PostgreSQL: the other tests of this directory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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
from dunning_kit.clock import SimulatedClock
from policy_engine.domain.closure import ClosureReason
from policy_engine.domain.step_ids import step_id
from policy_engine.service_layer.handlers import Engine, EngineConfig

from .conftest import TENANT, customer, invoice
from .in_memory_repository import InMemoryRepository

MONDAY = datetime(2026, 3, 2, 9, tzinfo=UTC)


class World:
    """One repository and one clock; every event is applied by a fresh Engine, as each consumer batch is."""

    def __init__(self) -> None:
        self.repo = InMemoryRepository()
        self.clock = SimulatedClock(MONDAY)

    async def apply(self, data: EventData) -> None:
        env: Envelope[Any] = new_event(data, tenant_id=TENANT, source="test", occurred_at=self.clock.now())
        engine = Engine.over(self.repo, self.clock, EngineConfig())
        handler = {
            "customer.upserted": engine.on_customer_upserted,
            "invoice.created": engine.on_invoice_created,
            "payment.applied": engine.on_allocations,
            "credit_note.applied": engine.on_allocations,
            "payment.reversed": engine.on_payment_reversed,
            "customer.erased": engine.on_customer_erased,
            "promise.created": engine.on_promise_created,
            "promise.broken": engine.on_promise_broken,
        }[env.type]
        await handler(env)

    def case(self, invoice_id: str = "INV-1") -> Any:
        return self.repo.case(TENANT, invoice_id)

    def reasons(self, invoice_id: str = "INV-1") -> list[tuple[str, str]]:
        return [(e.kind, e.reason) for e in self.repo.entries(invoice_id)]


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


async def opened(due_in_days: int = 10) -> World:
    world = World()
    await world.apply(customer())
    await world.apply(invoice("INV-1", due=MONDAY.date() + timedelta(days=due_in_days)))
    return world


async def test_an_invoice_created_gets_its_first_step_planned() -> None:
    world = await opened()

    case = world.case()
    assert (case.status, case.next_step, case.closure) == ("open", "pre_due_reminder", None)
    assert case.next_at is not None and case.next_at > MONDAY
    assert [kind for kind, _ in world.reasons()] == ["scheduled"]


async def test_a_payment_in_full_closes_the_case_as_paid_and_cancels_its_pending_step() -> None:
    world = await opened()
    await world.apply(paid_in_full())

    case = world.case()
    assert (case.status, case.closure, case.closed_reason) == (
        "closed",
        ClosureReason.PAID,
        "cancelled: the invoice was paid",
    )
    assert (case.next_step, case.next_at) == (None, None)
    (cancelled,) = world.repo.events("dunning.step.cancelled")
    assert isinstance(cancelled, DunningStepCancelled)
    assert cancelled.step_id == step_id(TENANT, "C-1", "default", "pre_due_reminder", "EUR", ["INV-1"])
    assert (cancelled.invoice_ids, cancelled.reason) == (["INV-1"], "cancelled: the invoice was paid")


async def test_a_reversed_payment_reopens_the_paid_case_and_plans_it_again() -> None:
    world = await opened()
    await world.apply(paid_in_full())
    world.clock.advance(timedelta(days=1))
    await world.apply(reversed_payment())

    case = world.case()
    assert (case.status, case.closure, case.closed_reason) == ("open", None, None)
    assert case.balance_minor == 100_000
    assert case.next_step == "pre_due_reminder" and case.next_at is not None
    kind, reason = world.reasons()[-1]
    assert kind == "scheduled" and "payment PAY-1 reversed" in reason


async def test_a_reversal_reopens_a_case_credited_to_zero_too() -> None:
    world = await opened()
    await world.apply(CreditNoteApplied(
        customer_id="C-1", credit_note_id="CN-1", currency="EUR", total=Decimal("1000.00"), issued_on=MONDAY.date(),
        allocations=[allocation("0.00", "paid", 2)],
    ))  # fmt: skip
    assert (world.case().closure, world.case().closed_reason) == (
        ClosureReason.CREDITED,
        "cancelled: the invoice was credited to zero",
    )

    await world.apply(reversed_payment())
    assert (world.case().status, world.case().closure) == ("open", None)


async def test_the_closure_decides_a_reopening_not_the_words_of_its_reason() -> None:
    """A hand-off to collections is final: rewording its text (here to say "unpaid") reopens nothing. The rule
    used to look for "paid" in the sentence."""
    world = await opened()
    stored = world.case()
    stored.status, stored.closure, stored.next_step, stored.next_at = "closed", ClosureReason.HANDED_OFF, None, None
    stored.closed_reason = "handed off to collections: unpaid after the final notice"

    await world.apply(reversed_payment())

    assert (world.case().status, world.case().closure) == ("closed", ClosureReason.HANDED_OFF)
    assert [kind for kind, _ in world.reasons()] == ["scheduled"]  # nothing happened since the invoice arrived


async def test_a_reversal_never_reopens_the_cases_of_an_erased_customer() -> None:
    world = await opened()
    await world.apply(paid_in_full())
    await world.apply(CustomerErased(customer_id="C-1", erased_at=MONDAY, pseudonym="erased-1"))
    await world.apply(reversed_payment())

    case = world.case()
    assert (case.status, case.closure) == ("closed", ClosureReason.ERASED)
    assert case.next_at is None


async def test_a_broken_promise_lifts_the_pause_and_re_escalates_to_a_firmer_step() -> None:
    world = await opened(due_in_days=-20)  # 20 days overdue: the gentle follow-ups are where it is
    before = world.case().next_step
    deadline = MONDAY + timedelta(days=7)
    await world.apply(PromiseCreated(
        customer_id="C-1", promise_id="P-1", invoice_ids=["INV-1"], currency="EUR", amount=Decimal("1000.00"),
        promised_date=deadline.date(), deadline=deadline, recorded_by="collector",
    ))  # fmt: skip
    assert (world.case().pause_reasons, world.case().next_at) == (["promise"], None)

    world.clock.set(deadline + timedelta(hours=1))
    await world.apply(PromiseBroken(
        customer_id="C-1", promise_id="P-1", invoice_ids=["INV-1"], currency="EUR", amount=Decimal("1000.00"),
        received=Decimal("0.00"), shortfall=Decimal("1000.00"), partially_kept=False, deadline=deadline,
        broken_promise_count=1,
    ))  # fmt: skip

    case = world.case()
    assert (case.pause_reasons, case.promise_ids) == ([], [])
    assert case.next_step != before and case.next_at is not None and case.next_at > world.clock.now()
    kind, reason = world.reasons()[-1]
    assert kind == "escalated" and reason.startswith("promise P-1 broken (shortfall 1000.00 EUR): escalating to ")
    assert world.repo.customers[(TENANT, "C-1")].broken_promise_count == 1
