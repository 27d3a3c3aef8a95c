"""The block-end timer: a dunning block set with `until` ends by itself at that moment, exactly once.

A block's end is a durable timer of its own (`customers.block_until`, `cases.block_until`, each with a partial
index holding only the blocks that have an end), not the step timer's `next_at`: a paused case has no `next_at`
(nothing is due while it is paused), a customer's block spans all its invoices, and ending it must run the very
path a DELETE runs (Engine.clear_customer_block / clear_invoice_block: the customer's note, `set_pause(remove=...)`,
the case resuming where it was or staying paused by what else holds it). The step timer's hot claim stays as it is.

One round is one transaction: the claim (FOR UPDATE SKIP LOCKED: replicas and loops never take the same block),
the cleared block (`block_until` NULL again, so it cannot end twice), the timeline and the resumed cases' plans
commit together or not at all; a crash re-runs the round. The step timer then fires the resumed steps.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from policy_engine.adapters import repository as repo
from policy_engine.service_layer.handlers import Engine, EngineConfig
from policy_engine.service_layer.policy_book import PolicyBook


async def end_due_blocks(
    session: AsyncSession, outbox: OutboxWriter, clock: Clock, config: EngineConfig, book: PolicyBook,
    now: datetime, limit: int,
) -> int:  # fmt: skip
    """End the blocks whose `until` has come (at most `limit` of each kind); returns how many ended."""
    due = await repo.claim_block_ends(await repo.driver(session), now, limit)
    engine = Engine(session, outbox, clock, config, book)
    for row in due:
        if row["invoice_id"] is None:
            await engine.clear_customer_block(row["tenant_id"], row["customer_id"], ended=row["block_until"])
        else:
            await engine.clear_invoice_block(row["tenant_id"], row["invoice_id"], ended=row["block_until"])
    return len(due)


async def block_end_stats(session: AsyncSession, now: datetime) -> tuple[int, float]:
    return await repo.block_end_stats(await repo.driver(session), now)
