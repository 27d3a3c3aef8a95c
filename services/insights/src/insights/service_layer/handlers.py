"""What insights does with every event of the four topics: the HANDLERS table (keyed by the events' data classes)
turns each run of events into fact rows (domain/facts.py); at the end of the batch the rows are applied set-wise in
the batch's transaction (adapters/apply_*.py). The same path applies a backfill's archived events, and
`apply_envelopes` is that path for a list of envelopes (the benchmark's way in).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.consumer import ConsumedEvent
from dunning_events.envelope import Envelope, EventData
from dunning_events.events import (
    ConsentRevoked,
    CreditNoteApplied,
    CustomerErased,
    CustomerUpserted,
    DisputeOpened,
    DisputeResolved,
    DunningStepCancelled,
    DunningStepDue,
    DunningStepHeld,
    InvoiceCreated,
    InvoiceUpdated,
    InvoiceVoided,
    NotificationBounced,
    NotificationDelivered,
    NotificationFailed,
    NotificationHeld,
    NotificationSent,
    NotificationSkipped,
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
from dunning_events.handler_table import HandlerTable, Reaction, RunHandler, on_run
from insights.adapters.apply_activity import apply_activity
from insights.adapters.apply_ledger import apply_ledger
from insights.domain import facts as f


class FactBatch:
    """One batch's fact rows, gathered by the table's handlers and applied once at its end (`flush`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.facts = f.Facts()

    async def flush(self) -> None:
        facts, self.facts = self.facts, f.Facts()
        await apply_ledger(self.session, facts)
        await apply_activity(self.session, facts)


def gather(add: Callable[[f.Facts, Any], None]) -> RunHandler[FactBatch, Any]:
    """The run handler of a pure translation: each envelope of the run becomes its rows."""

    async def run(batch: FactBatch, envelopes: list[Envelope[Any]]) -> None:
        facts = batch.facts
        for env in envelopes:
            add(facts, env)

    return run


# The index of what insights does with the stream, keyed by the events' data classes: every type that carries a
# fact. ledger.synced and dunning.step.replanned carry none (freshness; a new window for held deliveries).
HANDLERS: HandlerTable[FactBatch] = HandlerTable(
    # ledger-sync
    on_run(CustomerUpserted, gather(f.add_customer)),
    on_run(CustomerErased, gather(f.add_erasure)),
    on_run(InvoiceCreated, gather(f.add_invoice_snapshot)),
    on_run(InvoiceUpdated, gather(f.add_invoice_snapshot)),
    on_run(InvoiceVoided, gather(f.add_invoice_snapshot)),
    on_run(PaymentApplied, gather(f.add_payment)),
    on_run(PaymentReversed, gather(f.add_reversal)),
    on_run(CreditNoteApplied, gather(f.add_credit)),
    on_run(DisputeOpened, gather(f.add_dispute_opened)),
    on_run(DisputeResolved, gather(f.add_dispute_resolved)),
    # policy-engine
    on_run(DunningStepDue, gather(f.add_step_due)),
    on_run(DunningStepCancelled, gather(f.add_step_cancelled)),
    on_run(DunningStepHeld, gather(f.add_step_held)),
    # notifier
    on_run(NotificationSent, gather(f.add_delivery)),
    on_run(NotificationDelivered, gather(f.add_delivery)),
    on_run(NotificationBounced, gather(f.add_delivery)),
    on_run(NotificationFailed, gather(f.add_delivery)),
    on_run(NotificationSkipped, gather(f.add_delivery)),
    on_run(NotificationHeld, gather(f.add_delivery)),
    on_run(ConsentRevoked, gather(f.add_consent_revoked)),
    # promise-tracker
    on_run(PromiseCreated, gather(f.add_promise_created)),
    on_run(PromiseKept, gather(f.add_promise_outcome)),
    on_run(PromiseBroken, gather(f.add_promise_outcome)),
    on_run(PromiseCancelled, gather(f.add_promise_outcome)),
    on_run(PlanCreated, gather(f.add_plan_created)),
    on_run(PlanCompleted, gather(f.add_plan_outcome)),
    on_run(PlanDefaulted, gather(f.add_plan_outcome)),
)


async def flush_batch(batch: FactBatch, events: list[ConsumedEvent]) -> None:
    """After a consumer batch: its rows, applied set-wise in its transaction."""
    await batch.flush()


async def gather_envelopes(batch: FactBatch, envelopes: Sequence[Envelope[EventData]]) -> None:
    """Run the table's handlers over envelopes (consecutive ones of a type as one run); types it does not name are
    skipped, as the consumer skips them."""
    by_type = HANDLERS.by_type
    run: list[Envelope[Any]] = []
    run_of: Reaction[FactBatch] | None = None
    for env in envelopes:
        reaction = by_type.get(env.type)
        if reaction is None:
            continue
        if reaction is not run_of:
            if run_of is not None and run_of.run is not None:
                await run_of.run(batch, run)
            run, run_of = [], reaction
        run.append(env)
    if run_of is not None and run_of.run is not None:
        await run_of.run(batch, run)


async def apply_envelopes(session: AsyncSession, envelopes: Sequence[Envelope[EventData]]) -> None:
    """Apply a list of envelopes of any topics in the session's transaction, exactly as the consumers apply a batch
    (without the inbox: the caller de-duplicates, or relies on the natural keys as a backfill does)."""
    batch = FactBatch(session)
    await gather_envelopes(batch, envelopes)
    await batch.flush()
