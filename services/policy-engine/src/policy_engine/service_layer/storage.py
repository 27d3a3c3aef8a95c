"""What the engine's handlers need from storage: the repository protocol they depend on.

`policy_engine.adapters.repository.PostgresRepository` implements it on PostgreSQL (set-wise SQL inside the
consumer's transaction); the tests' in-memory repository implements it with dicts, so the handlers' rules
run without a database (the cosmicpython pattern). Every write here is part of the caller's transaction:
nothing is committed by the repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from dunning_events.envelope import Envelope
from dunning_events.events import CustomerUpserted
from policy_engine.domain.cases import Case, Debtor
from policy_engine.domain.freshness import SourceFreshness
from policy_engine.domain.policy import Policy


class PlanningProfile(NamedTuple):
    """What of a customer decides how their cases are planned: a change re-plans their open cases."""

    time_zone: str | None
    country: str | None
    segment: str | None
    tags: tuple[str, ...]  # sorted

    @classmethod
    def of(cls, d: CustomerUpserted) -> PlanningProfile:
        return cls(d.time_zone, d.country, d.segment, tuple(sorted(d.tags)))


class Reminded(NamedTuple):
    """A case whose hand-off to collections waited for a first reminder, woken because one reached the debtor."""

    customer_id: str
    invoice_id: str
    next_step: str | None


class DunningRepository(Protocol):
    # ---- policies and debtors
    async def policies(self, tenant: str) -> dict[str, Policy]:
        """The tenant's policies in force (current versions, the default included)."""
        ...

    async def assignments(
        self, tenant: str, customers: Iterable[str], segments: Iterable[str | None]
    ) -> dict[tuple[str, str], str]:
        """(scope, target) -> policy id, for these customers and segments."""
        ...

    async def debtors(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Debtor]:
        """Every (tenant, customer) asked for; an unknown customer is a bare Debtor."""
        ...

    async def with_late_history(self, debtors: Sequence[Debtor], tenant: str) -> list[Debtor]: ...

    # ---- cases (loads lock the rows for the rest of the transaction)
    async def cases(self, tenant: str, invoice_ids: Iterable[str]) -> dict[str, Case]: ...

    async def unclosed_cases_of(self, tenant: str, customer: str) -> list[Case]: ...

    async def invoice_ids_of(self, tenant: str, customer: str) -> list[str]:
        """Every invoice of the customer with a case (not locked)."""
        ...

    async def cases_paused_for_stale_ledger(self, tenant: str) -> list[Case]: ...

    async def insert_case(self, case: Case) -> bool: ...

    async def insert_cases(self, cases: Sequence[Case]) -> None: ...

    async def save_cases(self, cases: Sequence[Case]) -> None: ...

    async def flag_replan(self, tenant: str, customer_ids: Sequence[str], now: datetime) -> int:
        """Ask the timer to re-resolve and re-plan the customers' open cases (set-wise), at `now` at the latest."""
        ...

    # ---- customers
    async def ensure_customer(self, tenant: str, customer: str) -> None: ...

    async def lock_profiles(self, tenant: str, customer_ids: Sequence[str]) -> dict[str, PlanningProfile]:
        """The planning profile of each customer a customer.upserted already described (locked)."""
        ...

    async def upsert_customers(self, tenant: str, customers: Sequence[CustomerUpserted]) -> None: ...

    async def mark_erased(self, tenant: str, customer: str, erased_at: datetime, reason: str) -> bool:
        """customer.erased on the customer (kept for good); True the first time."""
        ...

    async def count_broken_promises(self, tenant: str, customer: str, count: int) -> None: ...

    async def set_block(
        self, tenant: str, customer: str, reason: str | None, until: datetime | None = None
    ) -> None: ...

    async def clear_block(self, tenant: str, customer: str) -> None: ...

    async def revoke_channel(self, tenant: str, customer: str, channel: str) -> None: ...

    async def record_contact_attempts(
        self, tenant: str, customer: str, delivery_id: str, channel: str, invoice_ids: Sequence[str], at: datetime
    ) -> None:
        """What the contact caps count (idempotent per delivery and invoice)."""
        ...

    async def mark_reminded(
        self, tenant: str, invoice_ids: Sequence[str], at: datetime, now: datetime
    ) -> list[Reminded]: ...

    # ---- timeline
    async def write_notes(self, cases: Iterable[Case], at: datetime) -> int:
        """Append every case's collected notes to the timeline and clear them."""
        ...

    async def write_customer_note(
        self, tenant: str, customer: str, at: datetime, kind: str, reason: str, **detail: Any
    ) -> None: ...

    async def write_invoice_note(
        self, tenant: str, customer: str, invoice_id: str, at: datetime, kind: str, reason: str,
        step: str | None = None, **detail: Any,
    ) -> None: ...  # fmt: skip

    async def step_name_of(self, tenant: str, invoice_id: str, step_id: str) -> str | None: ...

    async def redact_timeline(self, tenant: str, customer: str) -> int: ...

    # ---- ledger freshness
    async def record_sync(
        self, tenant: str, connector: str, scheduled: bool, success: datetime | None, reported: datetime,
        error: str | None,
    ) -> None: ...  # fmt: skip

    async def freshness_facts(
        self, tenants: Iterable[str]
    ) -> tuple[dict[str, list[SourceFreshness]], dict[str, timedelta]]: ...

    async def set_import_cadence(self, tenant: str, hours: int | None, now: datetime) -> None: ...

    # ---- events (the outbox, in the same transaction)
    async def add_events(self, events: Sequence[Envelope[Any]]) -> None: ...

    async def forget_published_events(self, tenant: str, customer: str) -> None:
        """customer.erased: drop the already-published copies of the customer's events."""
        ...
