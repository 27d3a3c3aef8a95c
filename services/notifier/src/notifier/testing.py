"""Test and bench helpers: the ledger's and the policy engine's events as the notifier's tests send them (through
the kit's feed), and the kit's reader for dunning.notifications.v1."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dunning_events.events import (
    Allocation,
    ConsentFlags,
    Contact,
    CustomerUpserted,
    DunningStepCancelled,
    DunningStepDue,
    DunningStepReplanned,
    InvoiceCreated,
    PaymentApplied,
    PostalAddress,
    StepInvoice,
)
from dunning_kit.clock import Clock
from dunning_kit.event_testing import EventFeed as KitEventFeed
from dunning_kit.event_testing import TopicReader, read_topic, start_producer  # noqa: F401 - re-exported for the tests


class EventFeed(KitEventFeed):
    """The kit's feed (publish, send_raw) with the builders of the ledger and step events the notifier's tests
    send, their defaults the notifier's fixtures."""

    @staticmethod
    def customer(
        customer_id: str = "C-1",
        name: str = "Initech GmbH",
        email: str | None = "ap@initech.example",
        phone: str | None = None,
        locale: str = "en",
        country: str | None = None,
        consent: dict[str, bool] | None = None,
        postal: PostalAddress | None = None,
        time_zone: str = "Europe/Berlin",
    ) -> CustomerUpserted:
        return CustomerUpserted(
            customer_id=customer_id, name=name, locale=locale, country=country, time_zone=time_zone,
            contacts=[Contact(name="Accounts Payable", email=email, phone=phone, role="billing")],
            consent=ConsentFlags(**(consent or {})), postal_address=postal,
        )  # fmt: skip

    def invoice(
        self,
        invoice_id: str = "INV-1",
        customer_id: str = "C-1",
        number: str = "2026-0042",
        total: str = "4820.00",
        balance: str | None = None,
        currency: str = "EUR",
        due_in_days: int = -10,
    ) -> InvoiceCreated:
        today = self.clock.now().date()
        return InvoiceCreated(
            customer_id=customer_id, invoice_id=invoice_id, number=number, currency=currency, total=Decimal(total),
            balance=Decimal(balance if balance is not None else total), issue_date=today - timedelta(days=30),
            due_date=today + timedelta(days=due_in_days),
        )  # fmt: skip

    def payment(
        self, invoice_id: str, amount: str, balance_after: str, customer_id: str = "C-1", currency: str = "EUR",
        payment_id: str = "PAY-1",
    ) -> PaymentApplied:  # fmt: skip
        return PaymentApplied(
            customer_id=customer_id, payment_id=payment_id, currency=currency, amount=Decimal(amount),
            received_on=self.clock.now().date(), unapplied=Decimal(0),
            allocations=[Allocation(invoice_id=invoice_id, amount=Decimal(amount), invoice_balance_after=Decimal(balance_after),
                                    invoice_status_after="paid" if Decimal(balance_after) == 0 else "open")],
        )  # fmt: skip

    def step(
        self,
        step_id: str = "S-1",
        customer_id: str = "C-1",
        invoices: Sequence[tuple[str, str, str]] = (("INV-1", "2026-0042", "4820.00"),),
        channels: Sequence[str] = ("email",),
        channel_mode: str = "all",
        template_id: str = "due_date_notice",
        tone: str = "neutral",
        currency: str = "EUR",
        days_overdue: int = 10,
        fees: Sequence[Any] = (),
        deliver_from: datetime | None = None,
        deliver_until: datetime | None = None,
    ) -> DunningStepDue:
        due: date = self.clock.now().date() - timedelta(days=days_overdue)
        items = [
            StepInvoice(
                invoice_id=i, number=n, total=Decimal(b), balance=Decimal(b), due_date=due, days_overdue=days_overdue
            )
            for i, n, b in invoices
        ]
        return DunningStepDue(
            customer_id=customer_id, step_id=step_id, policy_id="default", policy_version=1, step_index=1,
            step_name=template_id, tone=tone, template_id=template_id, channels=list(channels),
            channel_mode=channel_mode,
            currency=currency, amount_due=sum((i.balance for i in items), Decimal(0)), invoices=items, fees=list(fees),
            scheduled_for=self.clock.now(), deliver_from=deliver_from, deliver_until=deliver_until,
        )  # fmt: skip

    @staticmethod
    def replanned(
        step_id: str, invoice_ids: list[str], deliver_from: datetime, deliver_until: datetime, customer_id: str = "C-1"
    ) -> DunningStepReplanned:
        return DunningStepReplanned(
            customer_id=customer_id, step_id=step_id, invoice_ids=invoice_ids, deliver_from=deliver_from,
            deliver_until=deliver_until, reason="held outside the contact window; next window in the debtor's zone",
        )  # fmt: skip

    @staticmethod
    def cancelled(step_id: str, invoice_ids: list[str], customer_id: str = "C-1") -> DunningStepCancelled:
        return DunningStepCancelled(customer_id=customer_id, step_id=step_id, invoice_ids=invoice_ids, reason="paid")


async def open_feed(bootstrap_servers: str, clock: Clock, tenant_id: str = "acme") -> EventFeed:
    return EventFeed(await start_producer(bootstrap_servers), clock, tenant_id)


def at(clock: Clock, **delta: float) -> datetime:
    return clock.now() + timedelta(**delta)
