"""Test helpers for promise-tracker and the tests that drive it (browser, end-to-end): a feed that plays
ledger-sync on the broker, and a reader of any topic. Used only by tests; imports nothing from pytest."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer

from dunning_events import topics
from dunning_events.codec import encode
from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    Allocation,
    CreditNoteApplied,
    CustomerUpserted,
    InvoiceCreated,
    InvoiceVoided,
    PaymentApplied,
    PaymentReversed,
)
from dunning_events.topics import partition_key
from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import TopicReader, poll_until, read_topic  # noqa: F401 - re-exported for the tests

TENANT = "acme"


class LedgerFeed:
    """Plays ledger-sync: produces its events to the broker and keeps invoice balances to fill them in."""

    def __init__(self, producer: AIOKafkaProducer, clock: SimulatedClock, tenant: str = TENANT) -> None:
        self.producer = producer
        self.clock = clock
        self.tenant = tenant
        self.balances: dict[str, Decimal] = {}
        self.invoice_meta: dict[str, tuple[str, str]] = {}  # invoice -> (customer, currency)

    async def send(self, data: EventData, occurred_at: datetime | None = None) -> Envelope[EventData]:
        env = new_event(data, tenant_id=self.tenant, source="ledger-sync", occurred_at=occurred_at or self.clock.now())
        self.last_sent, self.last_raw = env, encode(env)  # the record: its CloudEvents headers and value
        headers, value = self.last_raw
        await self.producer.send_and_wait(
            topics.LEDGER, value=value, key=partition_key(self.tenant, data.customer_id).encode(), headers=headers
        )
        return env

    async def customer(self, customer_id: str, time_zone: str = "UTC", name: str | None = None) -> None:
        await self.send(
            CustomerUpserted(customer_id=customer_id, name=name or f"Customer {customer_id}", time_zone=time_zone)
        )

    async def invoice(
        self, invoice_id: str, customer_id: str, total: str, currency: str = "EUR", due_in_days: int = -5
    ) -> None:
        today = self.clock.now().date()
        self.balances[invoice_id] = Decimal(total)
        self.invoice_meta[invoice_id] = (customer_id, currency)
        await self.send(
            InvoiceCreated(
                customer_id=customer_id, invoice_id=invoice_id, number=invoice_id.removeprefix("INV-"),
                currency=currency, total=Decimal(total), balance=Decimal(total), issue_date=today - timedelta(days=30),
                due_date=today + timedelta(days=due_in_days),
            )
        )  # fmt: skip

    def _allocations(self, parts: list[tuple[str, str]], sign: int = 1) -> list[Allocation]:
        out = []
        for invoice_id, amount in parts:
            self.balances[invoice_id] = self.balances.get(invoice_id, Decimal(0)) - sign * Decimal(amount)
            after = self.balances[invoice_id]
            out.append(
                Allocation(
                    invoice_id=invoice_id, amount=Decimal(amount), invoice_balance_after=after,
                    invoice_status_after="paid" if after <= 0 else "open",
                )
            )  # fmt: skip
        return out

    async def payment(
        self,
        payment_id: str,
        customer_id: str,
        parts: list[tuple[str, str]],
        currency: str = "EUR",
        received_on: date | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        allocations = self._allocations(parts)
        total = sum((Decimal(a) for _, a in parts), Decimal(0))
        await self.send(
            PaymentApplied(
                customer_id=customer_id, payment_id=payment_id, currency=currency, amount=total,
                received_on=received_on or self.clock.now().date(), allocations=allocations, unapplied=Decimal(0),
            ),
            occurred_at,
        )  # fmt: skip

    async def credit_note(
        self, credit_note_id: str, customer_id: str, parts: list[tuple[str, str]], currency: str = "EUR"
    ) -> None:
        allocations = self._allocations(parts)
        total = sum((Decimal(a) for _, a in parts), Decimal(0))
        await self.send(
            CreditNoteApplied(
                customer_id=customer_id, credit_note_id=credit_note_id, currency=currency, total=total,
                issued_on=self.clock.now().date(), allocations=allocations,
            )
        )  # fmt: skip

    async def reversal(
        self, payment_id: str, customer_id: str, parts: list[tuple[str, str]], currency: str = "EUR"
    ) -> None:
        allocations = self._allocations(parts, sign=-1)
        total = sum((Decimal(a) for _, a in parts), Decimal(0))
        await self.send(
            PaymentReversed(
                customer_id=customer_id, payment_id=payment_id, currency=currency, amount=total, reason="chargeback",
                allocations=allocations,
            )
        )  # fmt: skip

    async def void(self, invoice_id: str) -> None:
        customer_id, currency = self.invoice_meta[invoice_id]
        today = self.clock.now().date()
        await self.send(
            InvoiceVoided(
                customer_id=customer_id, invoice_id=invoice_id, number=invoice_id.removeprefix("INV-"),
                currency=currency, total=self.balances[invoice_id], balance=Decimal(0), issue_date=today,
                status="void",
            )
        )  # fmt: skip
