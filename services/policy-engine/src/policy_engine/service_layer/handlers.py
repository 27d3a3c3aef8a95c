"""What the policy engine does when an event arrives or an operator acts. The HANDLERS table (at the end, keyed by
the events' data classes) is the index: "what happens when a payment arrives" is `on_allocations`.

Each handler loads the cases it touches (locked) through its repository (service_layer.storage: PostgreSQL in
production, in memory in the tests), applies the domain rules (policy_engine.domain.cases, .closure), and
writes back cases, timeline notes and events (outbox) in the consumer's one transaction. No SQL here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.consumer import ConsumedEvent
from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import (
    ConsentRevoked,
    CreditNoteApplied,
    CustomerErased,
    CustomerUpserted,
    DisputeOpened,
    DisputeResolved,
    DunningStepCancelled,
    DunningStepReplanned,
    DunningTaskAssigned,
    DunningTaskCompleted,
    DunningTaskSnoozed,
    InvoiceCreated,
    InvoiceUpdated,
    InvoiceVoided,
    LedgerSynced,
    NotificationFailed,
    NotificationHeld,
    NotificationSent,
    PaymentApplied,
    PaymentReversed,
    PlanCompleted,
    PlanCreated,
    PlanDefaulted,
    PromiseBroken,
    PromiseCancelled,
    PromiseCreated,
    PromiseKept,
)
from dunning_events.handler_table import HandlerTable, on, on_run
from dunning_events.money import to_minor
from dunning_events.outbox import OutboxWriter
from dunning_events.tracing import current_trace_headers
from dunning_kit.actor import Actor
from dunning_kit.clock import Clock
from policy_engine.adapters.repository import PostgresRepository
from policy_engine.domain import cases as rules
from policy_engine.domain.cases import Case, Debtor
from policy_engine.domain.closure import ClosureReason, Reopening, reopens, settled_by, voided_as
from policy_engine.domain.fees import interest
from policy_engine.domain.policy import DEBTOR_CHANNELS, Policy, StatutoryInterest
from policy_engine.domain.step_ids import step_id
from policy_engine.service_layer import task_log
from policy_engine.service_layer.freshness import stale_among
from policy_engine.service_layer.policy_book import PolicyBook
from policy_engine.service_layer.storage import DunningRepository, PlanningProfile
from policy_engine.service_layer.task_log import by_person_of

SOURCE = "policy-engine"


@dataclass(frozen=True)
class EngineConfig:
    stale_after: timedelta = timedelta(hours=26)
    recall_window: timedelta = timedelta(days=3)


@dataclass
class _Cancel:
    case: Case
    step_id: str
    reason: str


class Engine:
    """The handlers of one transaction (a consumer batch, an API request) over one repository."""

    def __init__(
        self, session: AsyncSession, outbox: OutboxWriter, clock: Clock, config: EngineConfig, book: PolicyBook
    ) -> None:
        self._setup(PostgresRepository(session, outbox, book), clock, config)

    @classmethod
    def over(cls, repository: DunningRepository, clock: Clock, config: EngineConfig) -> Engine:
        """An engine on any repository (the tests' in-memory one)."""
        engine = cls.__new__(cls)
        engine._setup(repository, clock, config)
        return engine

    def _setup(self, repository: DunningRepository, clock: Clock, config: EngineConfig) -> None:
        self.repo = repository
        self.clock = clock
        self.config = config
        self._policies: dict[str, dict[str, Policy]] = {}
        self._cancels: list[_Cancel] = []
        # traceparent of each event's consumer span (bulk runs are applied outside the events' own spans)
        self.trace_of: dict[uuid.UUID, str | None] = {}
        # The person an API call acts for (Dunning-Actor): every timeline entry it writes names them.
        self.actor: Actor | None = None

    def acting_for(self, actor: Actor | None) -> Engine:
        self.actor = actor
        return self

    def _by(self) -> dict[str, Any]:
        """The timeline detail naming the person who acted (nothing for the engine's own decisions)."""
        return {"actor": self.actor.as_detail()} if self.actor is not None else {}

    @property
    def now(self) -> datetime:
        return self.clock.now()

    # ------------------------------------------------------------------ shared steps

    async def policies(self, tenant: str) -> dict[str, Policy]:
        if tenant not in self._policies:
            self._policies[tenant] = await self.repo.policies(tenant)
        return self._policies[tenant]

    async def debtor(self, tenant: str, customer: str) -> Debtor:
        return (await self.repo.debtors([(tenant, customer)]))[(tenant, customer)]

    async def policy_for(self, case: Case, debtor: Debtor, *, resolve: bool = False) -> Policy:
        """The case's bound policy at its current version; re-resolved when asked, when the case is flagged
        for replanning, or when its policy was retired."""
        policies = await self.policies(case.tenant_id)
        if not resolve and not case.replan and case.policy_id in policies:
            return policies[case.policy_id]
        assignments = await self.repo.assignments(case.tenant_id, [debtor.customer_id], [debtor.segment])
        (debtor,) = await self.repo.with_late_history([debtor], case.tenant_id)
        policy, _why = rules.resolve_policy(debtor, case, policies, assignments)
        return policy

    async def load(self, tenant: str, invoice_ids: Iterable[str]) -> dict[str, Case]:
        return await self.repo.cases(tenant, invoice_ids)

    def close(self, case: Case, closure: ClosureReason, policy: Policy | None = None) -> None:
        """Stop dunning for good: cancel the pending step and recall a step sent moments ago."""
        balance_before = case.balance
        pending = rules.close(case, closure)
        self._after_stop(case, pending, rules.CLOSED_TEXT[closure])
        if policy is not None and case.notes:
            accrued = _accrued_interest(policy, case, balance_before, self.now)
            if accrued:
                case.notes[-1].detail["statutory_interest_accrued"] = accrued

    def make_idle(self, case: Case, reason: str) -> None:
        self._after_stop(case, rules.make_idle(case, reason), reason)

    def _after_stop(self, case: Case, pending: str | None, reason: str) -> None:
        if pending is not None and case.policy_id is not None:
            sid = step_id(case.tenant_id, case.customer_id, case.policy_id, pending, case.currency, [case.invoice_id])
            self._cancels.append(_Cancel(case, sid, reason))
            if case.notes:
                case.notes[-1].detail["step_id"] = sid
        recent = case.last_sent_at is not None and self.now - case.last_sent_at <= self.config.recall_window
        if recent and case.last_step_id is not None:
            # The notifier may still hold that step (retrying, waiting for the window): take this invoice off it.
            self._cancels.append(_Cancel(case, case.last_step_id, f"{reason} (recalled: already sent to the notifier)"))
            if case.notes:
                case.notes[-1].detail["recalled_step_id"] = case.last_step_id

    async def flush(self, cases: Iterable[Case], cause: Envelope[Any] | None = None) -> None:
        cases = list(cases)
        # The person who acted: through this service's API, or through another's whose event this is (a promise
        # recorded in the workspace pauses the case in the promise-recorder's name).
        by = self._by() or (by_person_of(cause) if cause is not None else {})
        if by:
            for case in cases:
                for note in case.notes:
                    note.detail.update(by)
        await self.repo.save_cases(cases)
        await self.repo.write_notes(cases, self.now)
        if self._cancels:
            await self.emit(
                [
                    (c.case.tenant_id, DunningStepCancelled(
                        customer_id=c.case.customer_id, step_id=c.step_id, invoice_ids=[c.case.invoice_id],
                        reason=c.reason,
                    ))
                    for c in self._cancels
                ],
                cause,
            )  # fmt: skip
            self._cancels.clear()

    async def emit(self, items: list[tuple[str, EventData]], cause: Envelope[Any] | None) -> None:
        await self.repo.add_events(
            [
                new_event(data, tenant_id=tenant, source=SOURCE, occurred_at=self.now, caused_by=cause)
                for tenant, data in items
            ]
        )

    async def pause(
        self, tenant: str, invoice_ids: Iterable[str], *, add: tuple[str, ...] = (), remove: tuple[str, ...] = (),
        cause: str = "", mutate: Callable[[Case], None] | None = None, env: Envelope[Any] | None = None,
        ledger_version: int | None = None,
    ) -> list[Case]:  # fmt: skip
        cases = list((await self.load(tenant, invoice_ids)).values())
        if ledger_version is not None:  # a ledger fact (a dispute): older than what the case applied changes nothing
            cases = [case for case in cases if rules.take_ledger_version(case, ledger_version)]
        for case in cases:
            if mutate is not None:
                mutate(case)
            debtor = await self.debtor(tenant, case.customer_id)
            policy = await self.policy_for(case, debtor)
            rules.set_pause(case, debtor, policy, self.now, add=add, remove=remove, cause=cause)
        await self.flush(cases, env)
        return cases

    # ------------------------------------------------------------------ ledger: customers

    async def on_customer_upserted(self, env: Envelope[CustomerUpserted]) -> None:
        await self.on_customers_upserted([env])

    async def on_customers_upserted(self, envs: list[Envelope[CustomerUpserted]]) -> None:
        """A run of customer.upserted applied set-wise (the last one wins when a customer repeats)."""
        by_tenant: dict[str, dict[str, CustomerUpserted]] = {}
        for env in envs:
            by_tenant.setdefault(env.tenant_id, {})[env.data.customer_id] = env.data
        for tenant, latest in by_tenant.items():
            old = await self.repo.lock_profiles(tenant, sorted(latest))
            await self.repo.upsert_customers(tenant, list(latest.values()))
            # Their time zone, calendar or applicable policy may have changed: the timer loop re-plans them.
            changed = [cid for cid, d in latest.items() if old.get(cid) != PlanningProfile.of(d)]
            if changed:
                await self.repo.flag_replan(tenant, changed, self.now)

    async def on_customer_erased(self, env: Envelope[CustomerErased]) -> None:
        """The customer's personal data was erased (GDPR Art. 17): dunning stops for good.

        Every case that is not closed yet is closed with ERASED_STOP (its pending step cancelled with
        dunning.step.cancelled, a step sent moments ago recalled, as when an invoice is paid); the customer keeps
        `erased_at`, so no later customer.upserted or invoice event starts dunning again (`rules.start`). The
        operator's block reasons and the free text quoted in the timeline (dispute reasons) are cut; the money
        facts, the contact attempts (the caps, Reg F's records) and the decisions themselves stay. A redelivery,
        or a second erasure, changes nothing."""
        d = env.data
        first = await self.repo.mark_erased(env.tenant_id, d.customer_id, d.erased_at, d.reason)
        cases = await self.repo.unclosed_cases_of(env.tenant_id, d.customer_id)
        for case in cases:
            pending = rules.erase(case, d.reason)
            self._after_stop(case, pending, rules.ERASED_STOP)
        await self.repo.redact_timeline(env.tenant_id, d.customer_id)
        await self.repo.forget_published_events(env.tenant_id, d.customer_id)
        if first:
            await self.repo.write_customer_note(
                env.tenant_id, d.customer_id, self.now, "cancelled",
                f"personal data erased ({d.reason.replace('_', ' ')}): dunning stopped for good",
                erasure=d.reason, erased_at=d.erased_at.isoformat(), cases_closed=len(cases),
            )  # fmt: skip
        await self.flush(cases, env)

    async def on_invoices_created(self, envs: list[Envelope[InvoiceCreated]]) -> None:
        """A run of invoice.created (distinct invoices) applied set-wise: one read of the debtors, policies and
        assignments, one insert, one COPY of the timeline."""
        new_cases: list[Case] = []
        for tenant in dict.fromkeys(env.tenant_id for env in envs):
            mine = [env for env in envs if env.tenant_id == tenant]
            existing = await self.load(tenant, [env.data.invoice_id for env in mine])
            fresh = [env for env in mine if env.data.invoice_id not in existing]
            for env in mine:
                if env.data.invoice_id in existing:
                    await self.on_invoice_updated(env)  # type: ignore[arg-type]
            loaded = await self.repo.debtors({(tenant, env.data.customer_id) for env in fresh})
            debtors = dict(zip(loaded, await self.repo.with_late_history(list(loaded.values()), tenant), strict=True))
            policies = await self.policies(tenant)
            assignments = await self.repo.assignments(
                tenant, [d.customer_id for d in debtors.values()], [d.segment for d in debtors.values()]
            )
            for env in fresh:
                debtor = debtors[(tenant, env.data.customer_id)]
                case = self._new_case(env, debtor)
                case.trace = self.trace_of.get(env.id)
                policy, _ = rules.resolve_policy(debtor, case, policies, assignments)
                self._begin(case, env.data, debtor, policy)
                new_cases.append(case)
        await self.repo.insert_cases(new_cases)
        await self.repo.write_notes(new_cases, self.now)

    def _new_case(self, env: Envelope[InvoiceCreated] | Envelope[InvoiceUpdated], debtor: Debtor) -> Case:
        d = env.data
        case = Case(
            tenant_id=env.tenant_id, invoice_id=d.invoice_id, customer_id=d.customer_id, number=d.number,
            currency=d.currency, total_minor=to_minor(d.total, d.currency),
            balance_minor=to_minor(d.balance, d.currency), due_date=d.due_date, ledger_version=d.version,
        )  # fmt: skip
        if d.disputed:
            case.pause_reasons.append("dispute")
        if debtor.blocked:
            case.pause_reasons.append("customer_block")
        return case

    def _begin(self, case: Case, d: InvoiceCreated | InvoiceUpdated, debtor: Debtor, policy: Policy) -> None:
        if d.status in ("void", "written_off"):
            rules.close_on_arrival(case, policy, voided_as(d.status))
        else:
            rules.start(case, debtor, policy, self.now)

    async def on_consent_revoked(self, env: Envelope[ConsentRevoked]) -> None:
        d = env.data
        await self.repo.revoke_channel(env.tenant_id, d.customer_id, d.channel)
        await self.repo.write_customer_note(
            env.tenant_id, d.customer_id, self.now, "skipped",
            f"{d.channel} opted out ({d.reason.replace('_', ' ')}): no further {d.channel} contact", channel=d.channel,
        )  # fmt: skip

    async def on_notification_sent(self, env: Envelope[NotificationSent]) -> None:
        """Contact caps count what was really sent, as the notifier reports it; a reminder that reached the
        debtor lets a hand-off to collections that waited for one go ahead."""
        d = env.data
        await self.repo.record_contact_attempts(
            env.tenant_id, d.customer_id, d.delivery_id, d.channel, d.invoice_ids, env.occurred_at
        )
        if d.channel not in DEBTOR_CHANNELS or not d.invoice_ids:
            return
        for r in await self.repo.mark_reminded(env.tenant_id, d.invoice_ids, env.occurred_at, self.now):
            await self.repo.write_invoice_note(
                env.tenant_id, r.customer_id, r.invoice_id, self.now, "resumed",
                f"a reminder reached the debtor ({d.channel}): {r.next_step} may hand off to collections now",
                r.next_step, delivery_id=d.delivery_id,
            )  # fmt: skip

    async def on_notification_failed(self, env: Envelope[NotificationFailed]) -> None:
        """A delivery whose outcome is unknown (the provider may have taken it) may have reached the debtor:
        Reg F counts attempts, so the contact caps count it. A certain failure was no contact and counts nothing."""
        d = env.data
        if not d.outcome_unknown:
            return
        await self.repo.record_contact_attempts(
            env.tenant_id, d.customer_id, d.delivery_id, d.channel, d.invoice_ids, env.occurred_at
        )

    async def on_notification_held(self, env: Envelope[NotificationHeld]) -> None:
        """The notifier reached a delivery outside its contact window and held it: give the step the next
        window the debtor may be contacted in (dunning.step.replanned). The held delivery keeps its id, so it is
        still sent once and counted once by the contact caps."""
        d = env.data
        cases = [c for c in (await self.load(env.tenant_id, d.invoice_ids)).values() if c.status == "open"]
        if not cases:
            # Every invoice of the step settled (or stopped) meanwhile: nothing to re-plan; drop the held delivery.
            await self.emit([(env.tenant_id, DunningStepCancelled(
                customer_id=d.customer_id, step_id=d.step_id, invoice_ids=d.invoice_ids,
                reason="held step no longer needed: dunning stopped on its invoices",
            ))], env)  # fmt: skip
            return
        debtor = await self.debtor(env.tenant_id, d.customer_id)
        policy = await self.policy_for(cases[0], debtor)
        window = rules.window(policy, debtor)
        not_before = max(self.now, d.deliver_from) if d.deliver_from is not None else self.now
        deliver_from = window.next_allowed(not_before)
        deliver_until = window.window_end(deliver_from)
        for case in cases:
            step = await self.repo.step_name_of(env.tenant_id, case.invoice_id, d.step_id)
            case.note("held", f"{step or 'the step'} held by the notifier ({d.channel}): {d.reason}", step,
                      step_id=d.step_id, delivery_id=d.delivery_id, channel=d.channel)  # fmt: skip
            rules.replan_held(case, debtor, policy, self.now, deliver_from, step)
        await self.emit(
            [(env.tenant_id, DunningStepReplanned(
                customer_id=d.customer_id, step_id=d.step_id, invoice_ids=[c.invoice_id for c in cases],
                deliver_from=deliver_from, deliver_until=deliver_until,
                reason=f"held by the notifier ({d.reason}); next allowed moment ({window.describe()})",
            ))],
            env,
        )  # fmt: skip
        await self.flush(cases, env)

    # ------------------------------------------------------------------ ledger: invoices

    async def on_invoice_created(self, env: Envelope[InvoiceCreated] | Envelope[InvoiceUpdated]) -> None:
        d = env.data
        tenant = env.tenant_id
        existing = await self.load(tenant, [d.invoice_id])
        if existing:
            await self.on_invoice_updated(env)  # type: ignore[arg-type]
            return
        debtor = await self.debtor(tenant, d.customer_id)
        case = self._new_case(env, debtor)
        case.trace = current_trace_headers().get("traceparent")
        policy = await self.policy_for(case, debtor, resolve=True)
        self._begin(case, d, debtor, policy)
        await self.repo.insert_case(case)
        await self.repo.write_notes([case], self.now)

    async def on_invoice_updated(self, env: Envelope[InvoiceUpdated]) -> None:
        d = env.data
        tenant = env.tenant_id
        case = (await self.load(tenant, [d.invoice_id])).get(d.invoice_id)
        if case is None:
            await self.on_invoice_created(env)
            return
        if not rules.take_ledger_version(case, d.version):
            return  # an older snapshot (a replayed dead letter): what came after it stands
        old_due, old_balance = case.due_date, case.balance_minor
        case.number = d.number
        case.total_minor = to_minor(d.total, d.currency)
        case.balance_minor = to_minor(d.balance, d.currency)
        case.due_date = d.due_date
        debtor = await self.debtor(tenant, case.customer_id)
        policy = await self.policy_for(case, debtor)
        closure = settled_by(d.status, case.balance_minor)
        if closure is ClosureReason.PAID:
            # The accrued interest is computed on the balance before the payment.
            new_balance, case.balance_minor = case.balance_minor, old_balance
            self.close(case, closure, policy)
            case.balance_minor = new_balance
        elif closure is not None:
            self.close(case, closure)
        else:
            if d.disputed != ("dispute" in case.pause_reasons):
                if d.disputed:
                    rules.set_pause(case, debtor, policy, self.now, add=("dispute",), cause="invoice marked disputed")
                else:
                    rules.set_pause(case, debtor, policy, self.now, remove=("dispute",), cause="dispute cleared")
            if case.status == "closed":
                if reopens(case.closure, Reopening.INVOICE_OPEN_AGAIN):
                    rules.reopen(case, debtor, policy, self.now, "the invoice is open again")
            elif case.status == "idle":
                if rules.no_dunning_reason(case, policy) is None:
                    rules.start(case, debtor, policy, self.now, "the invoice qualifies for dunning again")
            else:
                why_not = rules.no_dunning_reason(case, policy)
                if why_not is not None:
                    self.make_idle(case, why_not)
                elif old_due != case.due_date:
                    rules.replan(case, debtor, policy, self.now, f"due date changed from {old_due} to {case.due_date}")
        await self.flush([case], env)

    async def on_invoice_voided(self, env: Envelope[InvoiceVoided]) -> None:
        case = (await self.load(env.tenant_id, [env.data.invoice_id])).get(env.data.invoice_id)
        if case is None or not rules.take_ledger_version(case, env.data.version):
            return
        self.close(case, voided_as(env.data.status))
        await self.flush([case], env)

    async def on_allocations(self, env: Envelope[PaymentApplied] | Envelope[CreditNoteApplied]) -> None:
        """A payment or credit note settled (part of) invoices: stop at once on settled ones; partial ones go on
        with the new balance (or stop if it is now below the policy minimum)."""
        d = env.data
        credit_note = not isinstance(d, PaymentApplied)
        cases = await self.load(env.tenant_id, [a.invoice_id for a in d.allocations])
        touched = []
        for alloc in d.allocations:
            case = cases.get(alloc.invoice_id)
            if case is None or not rules.take_ledger_version(case, alloc.invoice_version_after):
                continue
            touched.append(case)
            balance_after = to_minor(alloc.invoice_balance_after, case.currency)
            debtor = await self.debtor(env.tenant_id, case.customer_id)
            policy = await self.policy_for(case, debtor)
            closure = settled_by(alloc.invoice_status_after, balance_after, credit_note=credit_note)
            if closure is not None:
                # A settlement notes the statutory interest still owed; a void or a write-off does not.
                settled = closure in (ClosureReason.PAID, ClosureReason.CREDITED)
                self.close(case, closure, policy if settled else None)
            elif case.status == "open":
                case.balance_minor = balance_after
                why_not = rules.no_dunning_reason(case, policy)
                if why_not is not None:
                    self.make_idle(case, why_not)
            case.balance_minor = balance_after
        await self.flush(touched, env)

    async def on_payment_reversed(self, env: Envelope[PaymentReversed]) -> None:
        d = env.data
        cases = await self.load(env.tenant_id, [a.invoice_id for a in d.allocations])
        touched = []
        for alloc in d.allocations:
            case = cases.get(alloc.invoice_id)
            if case is None or not rules.take_ledger_version(case, alloc.invoice_version_after):
                continue
            touched.append(case)
            case.balance_minor = to_minor(alloc.invoice_balance_after, case.currency)
            if alloc.invoice_status_after != "open":
                continue
            debtor = await self.debtor(env.tenant_id, case.customer_id)
            policy = await self.policy_for(case, debtor)
            settled = case.status == "closed" and reopens(case.closure, Reopening.PAYMENT_REVERSED)
            if settled or (case.status == "idle" and rules.no_dunning_reason(case, policy) is None):
                rules.reopen(case, debtor, policy, self.now, f"payment {d.payment_id} reversed")
        await self.flush(touched, env)

    async def on_dispute_opened(self, env: Envelope[DisputeOpened]) -> None:
        why = "dispute opened" + (f": {env.data.reason}" if env.data.reason else "")
        await self.pause(
            env.tenant_id, [env.data.invoice_id], add=("dispute",), cause=why, env=env,
            ledger_version=env.data.invoice_version,
        )  # fmt: skip

    async def on_dispute_resolved(self, env: Envelope[DisputeResolved]) -> None:
        why = "dispute resolved" + (f": {env.data.resolution}" if env.data.resolution else "")
        await self.pause(
            env.tenant_id, [env.data.invoice_id], remove=("dispute",), cause=why, env=env,
            ledger_version=env.data.invoice_version,
        )  # fmt: skip

    async def on_ledger_synced(self, env: Envelope[LedgerSynced]) -> None:
        d = env.data
        success = d.finished_at if d.succeeded else d.last_successful_sync_at
        await self.repo.record_sync(env.tenant_id, d.connector, d.scheduled, success, d.finished_at, d.error)
        verb = "synced" if d.scheduled else "imported"
        await self.resume_if_fresh(env.tenant_id, f"connector {d.connector} {verb} at {d.finished_at.isoformat()}", env)

    async def resume_if_fresh(self, tenant: str, cause: str, env: Envelope[Any] | None = None) -> None:
        """The tenant's ledger may be fresh again (a sync, an import, a cadence dropped): resume what it paused."""
        sources, cadences = await self.repo.freshness_facts([tenant])
        if tenant in stale_among(sources, cadences, self.now, self.config.stale_after):
            return
        cases = await self.repo.cases_paused_for_stale_ledger(tenant)
        for case in cases:
            debtor = await self.debtor(case.tenant_id, case.customer_id)
            policy = await self.policy_for(case, debtor)
            rules.set_pause(case, debtor, policy, self.now, remove=("stale_ledger",), cause=cause)
        await self.flush(cases, env)

    async def set_import_cadence(self, tenant: str, hours: int | None) -> None:
        """A tenant that imports files (or pushes through the API) declares how often an import must arrive;
        without one (None), its silence never makes its ledger stale."""
        await self.repo.set_import_cadence(tenant, hours, self.now)
        if hours is None:
            await self.resume_if_fresh(tenant, "the import cadence was removed")

    # ------------------------------------------------------------------ promises and plans

    async def on_promise_created(self, env: Envelope[PromiseCreated]) -> None:
        d = env.data

        def add(case: Case) -> None:
            if d.promise_id not in case.promise_ids:
                case.promise_ids.append(d.promise_id)

        cause = f"promise {d.promise_id}: {d.amount} {d.currency} by {d.promised_date}"
        await self.pause(env.tenant_id, d.invoice_ids, add=("promise",), cause=cause, mutate=add, env=env)

    async def _promise_ended(self, env: Envelope[Any], promise_id: str, invoice_ids: list[str], cause: str) -> None:
        cases = list((await self.load(env.tenant_id, invoice_ids)).values())
        for case in cases:
            if promise_id in case.promise_ids:
                case.promise_ids.remove(promise_id)
            if case.promise_ids:
                continue  # another promise still stands
            debtor = await self.debtor(env.tenant_id, case.customer_id)
            policy = await self.policy_for(case, debtor)
            rules.set_pause(case, debtor, policy, self.now, remove=("promise",), cause=cause)
        await self.flush(cases, env)

    async def on_promise_kept(self, env: Envelope[PromiseKept]) -> None:
        await self._promise_ended(env, env.data.promise_id, env.data.invoice_ids, f"promise {env.data.promise_id} kept")

    async def on_promise_cancelled(self, env: Envelope[PromiseCancelled]) -> None:
        d = env.data
        await self._promise_ended(env, d.promise_id, d.invoice_ids, f"promise {d.promise_id} cancelled")

    async def on_promise_broken(self, env: Envelope[PromiseBroken]) -> None:
        d = env.data
        await self.repo.count_broken_promises(env.tenant_id, d.customer_id, d.broken_promise_count)
        why = f"promise {d.promise_id} broken (shortfall {d.shortfall} {d.currency})"
        await self._re_escalate(env, d.invoice_ids, why, promise_id=d.promise_id)

    async def on_plan_created(self, env: Envelope[PlanCreated]) -> None:
        d = env.data

        def bind(case: Case) -> None:
            case.plan_id = d.plan_id

        cause = f"payment plan {d.plan_id}: {len(d.instalments)} instalments, {d.total} {d.currency}"
        await self.pause(env.tenant_id, d.invoice_ids, add=("payment_plan",), cause=cause, mutate=bind, env=env)

    async def on_plan_completed(self, env: Envelope[PlanCompleted]) -> None:
        d = env.data

        def unbind(case: Case) -> None:
            case.plan_id = None

        cause = f"payment plan {d.plan_id} completed"
        await self.pause(env.tenant_id, d.invoice_ids, remove=("payment_plan",), cause=cause, mutate=unbind, env=env)

    async def on_plan_defaulted(self, env: Envelope[PlanDefaulted]) -> None:
        d = env.data
        await self._re_escalate(env, d.invoice_ids, f"payment plan {d.plan_id} defaulted ({d.reason})", plan=True)

    async def _re_escalate(
        self, env: Envelope[Any], invoice_ids: list[str], why: str, *, promise_id: str | None = None,
        plan: bool = False,
    ) -> None:  # fmt: skip
        cases = list((await self.load(env.tenant_id, invoice_ids)).values())
        for case in cases:
            rules.arrangement_broken(case, promise_id=promise_id, plan=plan)
            debtor = await self.debtor(env.tenant_id, case.customer_id)
            # The customer may now be a chronic promise-breaker, which another policy may be for.
            policy = await self.policy_for(case, debtor, resolve=True)
            rule = policy.doc.on_plan_defaulted if plan else policy.doc.on_promise_broken
            rules.escalate(case, debtor, policy, self.now, rule, why)
        await self.flush(cases, env)

    # ------------------------------------------------------------------ operator actions (API)

    async def set_customer_block(
        self, tenant: str, customer: str, reason: str | None, until: datetime | None = None
    ) -> None:
        """Pause every invoice of the customer; with `until`, the block-end timer lifts it then."""
        await self.repo.set_block(tenant, customer, reason, until)
        cause = _block_set("customer", reason, until)
        await self.repo.write_customer_note(tenant, customer, self.now, "paused", cause, **self._by(), **_until(until))
        ids = await self.repo.invoice_ids_of(tenant, customer)
        await self.pause(tenant, ids, add=("customer_block",), cause=cause)

    async def clear_customer_block(self, tenant: str, customer: str, *, ended: datetime | None = None) -> None:
        """Resume the customer's invoices (what no other pause holds): a DELETE, or the block's end (`ended`)."""
        await self.repo.clear_block(tenant, customer)
        cause = _block_cleared("customer", ended)
        await self.repo.write_customer_note(tenant, customer, self.now, "resumed", cause, **self._by())
        ids = await self.repo.invoice_ids_of(tenant, customer)
        await self.pause(tenant, ids, remove=("customer_block",), cause=cause)

    async def set_invoice_block(
        self, tenant: str, invoice_id: str, reason: str | None, until: datetime | None = None
    ) -> bool:
        def note_reason(case: Case) -> None:
            case.block_reason = reason
            case.block_until = until

        cause = _block_set("invoice", reason, until)
        return bool(await self.pause(tenant, [invoice_id], add=("invoice_block",), cause=cause, mutate=note_reason))

    async def clear_invoice_block(self, tenant: str, invoice_id: str, *, ended: datetime | None = None) -> bool:
        def clear(case: Case) -> None:
            case.block_reason = None
            case.block_until = None

        cause = _block_cleared("invoice", ended)
        return bool(await self.pause(tenant, [invoice_id], remove=("invoice_block",), cause=cause, mutate=clear))


def _block_set(scope: str, reason: str | None, until: datetime | None) -> str:
    # The operator's reason stays last, after "set: " (a FREE_TEXT_MARKER): erasure cuts it there.
    return (
        f"{scope} dunning block"
        + (f" until {until.isoformat()}" if until else "")
        + " set"
        + (f": {reason}" if reason else "")
    )


def _block_cleared(scope: str, ended: datetime | None) -> str:
    return f"{scope} dunning block " + (f"ended (until {ended.isoformat()})" if ended else "cleared")


def _until(until: datetime | None) -> dict[str, str]:
    return {"until": until.isoformat()} if until else {}


def _accrued_interest(policy: Policy, case: Case, balance: Any, now: datetime) -> str | None:
    """Statutory interest the creditor may still claim once the principal is paid (it is not lost)."""
    rule = next((f for s in policy.steps for f in s.fees if isinstance(f, StatutoryInterest)), None)
    if rule is None or case.due_date is None:
        return None
    amount = interest(balance, rule, case.due_date, now.date(), case.currency)
    return f"{amount} {case.currency}" if amount > 0 else None


# The index of the engine's behaviour: what it does with each event its consumers receive. customer.upserted and
# invoice.created arrive in bulk (an ERP sync, a CSV import) and are applied set-wise; their one-event forms
# (on_customer_upserted, on_invoice_created) serve the API and invoice.updated for an invoice not seen yet.
HANDLERS: HandlerTable[Engine] = HandlerTable(
    # dunning.ledger.v1
    on_run(CustomerUpserted, Engine.on_customers_upserted),
    on_run(InvoiceCreated, Engine.on_invoices_created),
    on(InvoiceUpdated, Engine.on_invoice_updated),
    on(InvoiceVoided, Engine.on_invoice_voided),
    on(PaymentApplied, Engine.on_allocations),
    on(CreditNoteApplied, Engine.on_allocations),
    on(PaymentReversed, Engine.on_payment_reversed),
    on(DisputeOpened, Engine.on_dispute_opened),
    on(DisputeResolved, Engine.on_dispute_resolved),
    on(LedgerSynced, Engine.on_ledger_synced),
    on(CustomerErased, Engine.on_customer_erased),
    # dunning.promises.v1
    on(PromiseCreated, Engine.on_promise_created),
    on(PromiseKept, Engine.on_promise_kept),
    on(PromiseCancelled, Engine.on_promise_cancelled),
    on(PromiseBroken, Engine.on_promise_broken),
    on(PlanCreated, Engine.on_plan_created),
    on(PlanCompleted, Engine.on_plan_completed),
    on(PlanDefaulted, Engine.on_plan_defaulted),
    # dunning.notifications.v1
    on(NotificationSent, Engine.on_notification_sent),
    on(NotificationFailed, Engine.on_notification_failed),
    on(NotificationHeld, Engine.on_notification_held),
    on(ConsentRevoked, Engine.on_consent_revoked),
    on(DunningTaskAssigned, task_log.on_task_assigned),
    on(DunningTaskSnoozed, task_log.on_task_snoozed),
    on(DunningTaskCompleted, task_log.on_task_completed),
)


def commuting_layers(events: list[ConsumedEvent]) -> list[list[ConsumedEvent]]:
    """Split a batch into layers that can each be applied set-wise without changing any outcome.

    Events of different customers commute (partitioning orders only each customer's events), so a layer
    holds at most one step of every customer's sequence, in order: a customer's k-th event is in a later
    layer than its (k-1)-th — except that consecutive invoice.created of distinct invoices of one customer
    share a layer (they touch different cases). A layer's bulk types then run as one set-wise call each.
    """
    layers: list[list[ConsumedEvent]] = []
    state: dict[tuple[str, str], tuple[int, str, set[str]]] = {}  # customer -> (layer, last type, invoices)
    for ev in events:
        key = (ev.envelope.tenant_id, ev.envelope.customer_id)
        prev = state.get(key)
        if prev is None:
            layer, invoices = 0, set()
        elif prev[1] == ev.type == "invoice.created" and ev.envelope.subject not in prev[2]:
            layer, invoices = prev[0], prev[2]
        else:
            layer, invoices = prev[0] + 1, set()
        invoices.add(ev.envelope.subject)
        state[key] = (layer, ev.type, invoices)
        while len(layers) <= layer:
            layers.append([])
        layers[layer].append(ev)
    return layers


def note_trace(engine: Engine, env: Envelope[Any]) -> None:
    """Inside a set-wise event's own consumer span: the trace its effects (a step's event) go on from."""
    engine.trace_of[env.id] = current_trace_headers().get("traceparent")
