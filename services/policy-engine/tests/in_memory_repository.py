"""The engine's repository in dicts (service_layer.storage.DunningRepository without a database): the fake that
lets tests drive the real handlers in microseconds, as cosmicpython's FakeRepository does.

It keeps what PostgreSQL keeps and nothing more: a loaded case is a copy (changes land only through
save_cases), notes are not part of a stored case, and the timeline and the outbox are append-only lists.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from dunning_events.envelope import Envelope
from dunning_events.events import CustomerUpserted
from policy_engine.domain.cases import Case, Debtor, redact_free_text
from policy_engine.domain.freshness import SourceFreshness
from policy_engine.domain.policy import DEFAULT_POLICY, DEFAULT_POLICY_ID, Policy
from policy_engine.service_layer.storage import DunningRepository, PlanningProfile, Reminded


@dataclass
class StoredCustomer:
    known: bool = False
    profile: PlanningProfile = field(default_factory=lambda: PlanningProfile(None, None, None, ()))
    consent: dict[str, bool] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)
    blocked: bool = False
    block_reason: str | None = None
    block_until: datetime | None = None
    broken_promise_count: int = 0
    erased_at: datetime | None = None
    erasure_reason: str | None = None


@dataclass(frozen=True)
class TimelineEntry:
    tenant_id: str
    customer_id: str
    invoice_id: str | None
    at: datetime
    kind: str
    step: str | None
    reason: str
    detail: dict[str, Any]


def _stored(case: Case) -> Case:
    kept = copy.deepcopy(case)
    kept.notes = []  # notes go to the timeline, not into the case row
    kept.holds = []  # holds become events
    return kept


class InMemoryRepository:
    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        self.policy_set: dict[str, Policy] = {DEFAULT_POLICY_ID: DEFAULT_POLICY, **{p.id: p for p in policies}}
        self.assigned: dict[tuple[str, str, str], str] = {}  # (tenant, scope, target) -> policy id
        self.customers: dict[tuple[str, str], StoredCustomer] = {}
        self.rows: dict[tuple[str, str], Case] = {}  # (tenant, invoice) -> the stored case
        self.timeline: list[TimelineEntry] = []
        self.outbox: list[Envelope[Any]] = []
        self.contacts: dict[tuple[str, str], tuple[str, str, str, str, datetime]] = {}
        self.syncs: dict[tuple[str, str], SourceFreshness] = {}
        self.cadences: dict[str, timedelta] = {}

    # ---- what a test reads
    def case(self, tenant: str, invoice_id: str) -> Case:
        return self.rows[(tenant, invoice_id)]

    def entries(self, invoice_id: str) -> list[TimelineEntry]:
        return [e for e in self.timeline if e.invoice_id == invoice_id]

    def events(self, type_: str) -> list[Any]:
        return [e.data for e in self.outbox if e.type == type_]

    # ---- policies and debtors
    async def policies(self, tenant: str) -> dict[str, Policy]:
        return dict(self.policy_set)

    async def assignments(
        self, tenant: str, customers: Iterable[str], segments: Iterable[str | None]
    ) -> dict[tuple[str, str], str]:
        wanted = {("customer", c) for c in customers} | {("segment", s) for s in segments if s is not None}
        return {
            (scope, target): p
            for (t, scope, target), p in self.assigned.items()
            if t == tenant and (scope, target) in wanted
        }

    async def debtors(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Debtor]:
        out = {}
        for tenant, customer in set(keys):
            c = self.customers.get((tenant, customer))
            out[(tenant, customer)] = Debtor(customer_id=customer) if c is None else Debtor(
                customer_id=customer, time_zone=c.profile.time_zone, country=c.profile.country,
                segment=c.profile.segment, tags=frozenset(c.profile.tags), consent=dict(c.consent),
                revoked=frozenset(c.revoked), blocked=c.blocked, erased=c.erased_at is not None,
                broken_promise_count=c.broken_promise_count,
            )  # fmt: skip
        return out

    async def with_late_history(self, debtors: Sequence[Debtor], tenant: str) -> list[Debtor]:
        def late(customer: str) -> int:
            return sum(
                1 for (t, _), c in self.rows.items() if t == tenant and c.customer_id == customer and c.went_late
            )

        return [replace(d, late_invoice_count=late(d.customer_id)) for d in debtors]

    # ---- cases
    async def cases(self, tenant: str, invoice_ids: Iterable[str]) -> dict[str, Case]:
        return {i: copy.deepcopy(self.rows[(tenant, i)]) for i in sorted(set(invoice_ids)) if (tenant, i) in self.rows}

    def _where(self, tenant: str, keep: Any) -> list[Case]:
        return [copy.deepcopy(c) for (t, i), c in sorted(self.rows.items()) if t == tenant and keep(c)]

    async def unclosed_cases_of(self, tenant: str, customer: str) -> list[Case]:
        return self._where(tenant, lambda c: c.customer_id == customer and c.status != "closed")

    async def invoice_ids_of(self, tenant: str, customer: str) -> list[str]:
        return [c.invoice_id for c in self._where(tenant, lambda c: c.customer_id == customer)]

    async def cases_paused_for_stale_ledger(self, tenant: str) -> list[Case]:
        return self._where(tenant, lambda c: "stale_ledger" in c.pause_reasons)

    async def insert_case(self, case: Case) -> bool:
        key = (case.tenant_id, case.invoice_id)
        if key in self.rows:
            return False
        self.rows[key] = _stored(case)
        return True

    async def insert_cases(self, cases: Sequence[Case]) -> None:
        for case in cases:
            await self.insert_case(case)

    async def save_cases(self, cases: Sequence[Case]) -> None:
        for case in cases:
            assert (case.tenant_id, case.invoice_id) in self.rows, "save_cases updates existing cases only"
            # The constraint the cases table holds (ck_cases_closure_iff_closed).
            assert (case.status == "closed") == (case.closure is not None), "a closed case says why, only a closed one"
            self.rows[(case.tenant_id, case.invoice_id)] = _stored(case)

    async def flag_replan(self, tenant: str, customer_ids: Sequence[str], now: datetime) -> int:
        flagged = [
            c for (t, _), c in self.rows.items() if t == tenant and c.customer_id in customer_ids and c.status == "open"
        ]
        for c in flagged:
            c.replan = True
            c.next_at = None if c.next_at is None else min(c.next_at, now)
        return len(flagged)

    # ---- customers
    def _customer(self, tenant: str, customer: str) -> StoredCustomer:
        return self.customers.setdefault((tenant, customer), StoredCustomer())

    async def ensure_customer(self, tenant: str, customer: str) -> None:
        self._customer(tenant, customer)

    async def lock_profiles(self, tenant: str, customer_ids: Sequence[str]) -> dict[str, PlanningProfile]:
        found = {cid: self.customers.get((tenant, cid)) for cid in customer_ids}
        return {cid: c.profile for cid, c in found.items() if c is not None and c.known}

    async def upsert_customers(self, tenant: str, customers: Sequence[CustomerUpserted]) -> None:
        for d in customers:
            c = self._customer(tenant, d.customer_id)
            c.known, c.profile, c.consent = True, PlanningProfile.of(d), d.consent.model_dump()

    async def mark_erased(self, tenant: str, customer: str, erased_at: datetime, reason: str) -> bool:
        c = self._customer(tenant, customer)
        first = c.erased_at is None
        c.erased_at, c.erasure_reason = c.erased_at or erased_at, c.erasure_reason or reason
        c.profile, c.block_reason = c.profile._replace(tags=()), None
        for (t, _), case in self.rows.items():
            if t == tenant and case.customer_id == customer:
                case.block_reason = None
        return first

    async def count_broken_promises(self, tenant: str, customer: str, count: int) -> None:
        c = self._customer(tenant, customer)
        c.broken_promise_count = max(c.broken_promise_count, count)

    async def set_block(self, tenant: str, customer: str, reason: str | None, until: datetime | None = None) -> None:
        c = self._customer(tenant, customer)
        c.blocked, c.block_reason, c.block_until = True, reason, until

    async def clear_block(self, tenant: str, customer: str) -> None:
        if (tenant, customer) in self.customers:
            c = self.customers[(tenant, customer)]
            c.blocked, c.block_reason, c.block_until = False, None, None

    async def revoke_channel(self, tenant: str, customer: str, channel: str) -> None:
        c = self._customer(tenant, customer)
        if channel not in c.revoked:
            c.revoked.append(channel)

    async def record_contact_attempts(
        self, tenant: str, customer: str, delivery_id: str, channel: str, invoice_ids: Sequence[str], at: datetime
    ) -> None:
        for inv in invoice_ids or [""]:
            self.contacts.setdefault((delivery_id, inv), (tenant, customer, inv, channel, at))

    async def mark_reminded(
        self, tenant: str, invoice_ids: Sequence[str], at: datetime, now: datetime
    ) -> list[Reminded]:
        woken = []
        for inv in sorted(set(invoice_ids)):
            c = self.rows.get((tenant, inv))
            if c is None or not (c.reminded_at is None or c.awaiting_reminder):
                continue
            was_waiting = c.awaiting_reminder
            c.reminded_at = c.reminded_at or at
            c.awaiting_reminder = False
            if was_waiting:
                c.planned_at = now
                if c.status == "open" and not c.pause_reasons:
                    c.next_at = now
                woken.append(Reminded(c.customer_id, c.invoice_id, c.next_step))
        return woken

    # ---- timeline
    async def write_notes(self, cases: Iterable[Case], at: datetime) -> int:
        n = 0
        for c in cases:
            for note in c.notes:
                self.timeline.append(TimelineEntry(
                    c.tenant_id, c.customer_id, c.invoice_id, at, note.kind, note.step, note.reason, dict(note.detail)
                ))  # fmt: skip
                n += 1
            c.notes.clear()
        return n

    async def write_customer_note(
        self, tenant: str, customer: str, at: datetime, kind: str, reason: str, **detail: Any
    ) -> None:
        self.timeline.append(TimelineEntry(tenant, customer, None, at, kind, None, reason, detail))

    async def write_invoice_note(
        self, tenant: str, customer: str, invoice_id: str, at: datetime, kind: str, reason: str,
        step: str | None = None, **detail: Any,
    ) -> None:  # fmt: skip
        self.timeline.append(TimelineEntry(tenant, customer, invoice_id, at, kind, step, reason, detail))

    async def step_name_of(self, tenant: str, invoice_id: str, step_id: str) -> str | None:
        sent = [
            e for e in self.timeline
            if e.tenant_id == tenant and e.invoice_id == invoice_id and e.kind == "sent" and e.detail.get("step_id") == step_id
        ]  # fmt: skip
        return sent[-1].step if sent else None

    async def redact_timeline(self, tenant: str, customer: str) -> int:
        changed = 0
        for i, e in enumerate(self.timeline):
            if e.tenant_id == tenant and e.customer_id == customer and redact_free_text(e.reason) != e.reason:
                self.timeline[i] = replace(e, reason=redact_free_text(e.reason))
                changed += 1
        return changed

    # ---- ledger freshness
    async def record_sync(
        self, tenant: str, connector: str, scheduled: bool, success: datetime | None, reported: datetime,
        error: str | None,
    ) -> None:  # fmt: skip
        before = self.syncs.get((tenant, connector))
        if before is not None and before.last_success_at is not None and success is not None:
            success = max(success, before.last_success_at)
        elif before is not None and success is None:
            success = before.last_success_at
        self.syncs[(tenant, connector)] = SourceFreshness(connector, scheduled, success)

    async def freshness_facts(
        self, tenants: Iterable[str]
    ) -> tuple[dict[str, list[SourceFreshness]], dict[str, timedelta]]:
        tenants = set(tenants)
        sources: dict[str, list[SourceFreshness]] = {t: [] for t in tenants}
        for (t, _), fact in self.syncs.items():
            if t in tenants:
                sources[t].append(fact)
        return sources, {t: c for t, c in self.cadences.items() if t in tenants}

    async def set_import_cadence(self, tenant: str, hours: int | None, now: datetime) -> None:
        if hours is None:
            self.cadences.pop(tenant, None)
        else:
            self.cadences[tenant] = timedelta(hours=hours)

    # ---- events
    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        self.outbox.extend(events)

    async def forget_published_events(self, tenant: str, customer: str) -> None:
        """Nothing here is ever published: every event stays (as unpublished outbox rows do)."""


def _implements_the_protocol(fake: InMemoryRepository) -> DunningRepository:
    return fake  # mypy checks the fake against the protocol the handlers depend on
