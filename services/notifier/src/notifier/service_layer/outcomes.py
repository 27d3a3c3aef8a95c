"""What a delivery's outcome writes: its status, the notification event, and what follows from it (a
suppression and consent.revoked after a hard bounce, the fallback channel's record) - recorded in groups as
the provider calls come back; and the report of calls a crash left in doubt (`unknown`, never re-sent)."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_events.consumer import is_transient
from dunning_events.envelope import Envelope
from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from notifier.adapters import claims, delivery_records
from notifier.adapters.delivery_records import insert_deliveries
from notifier.domain.contact_window import OutsideWindow
from notifier.domain.messages import SendError, SendReceipt
from notifier.domain.recipients import suppression_key
from notifier.domain.retry import GiveUp, RetryAt, RetryPolicy, after_failure
from notifier.service_layer.compose import Send
from notifier.service_layer.notification_events import failed_event, held_event, sent_event
from notifier.service_layer.steps import idempotency_key
from notifier.service_layer.suppressions import add_suppression

log = logging.getLogger("notifier.dispatcher")

MESSAGES = Counter("notifier_messages_total", "Delivery outcomes", ["channel", "outcome"])
OUTCOME_WRITE_RETRIES = Counter(
    "notifier_outcome_write_retries_total", "Writes of provider outcomes retried after a transient database error"
)


@dataclass
class Outcome:
    row: dict[str, Any]
    send: Send
    receipt: SendReceipt | None = None
    error: SendError | None = None
    held: OutsideWindow | None = None  # reached the gate outside its contact window: not sent


@dataclass
class _Plan:
    """A group of outcomes sorted by what they ask the database for."""

    held: list[Outcome] = field(default_factory=list)
    sent: list[Outcome] = field(default_factory=list)
    retries: list[tuple[Outcome, RetryAt]] = field(default_factory=list)
    failed: list[tuple[Outcome, GiveUp]] = field(default_factory=list)


def fallback_row(row: Mapping[str, Any], now: datetime, reason: str) -> dict[str, Any] | None:
    """The next channel's delivery record, when the step's channel_mode is `fallback` and one is left."""
    rest = list(row.get("fallback_channels") or [])
    if row.get("channel_mode") != "fallback" or not rest:
        return None
    step = dict(row["step"])
    step["fallback_reason"] = f"{row['channel']}: {reason}"
    return {
        "id": uuid.uuid4(),
        "tenant_id": row["tenant_id"],
        "customer_id": row["customer_id"],
        "step_id": row["step_id"],
        "channel": rest[0],
        "idempotency_key": idempotency_key(row["tenant_id"], row["customer_id"], row["step_id"], rest[0]),
        "step": step,
        "channel_mode": "fallback",
        "fallback_channels": rest[1:],
        "next_attempt_at": now,
        "correlation_id": row.get("correlation_id"),
    }


class OutcomeRecorder:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbox: OutboxWriter,
        clock: Clock,
        retry: RetryPolicy,
        stuck_after_seconds: float,
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.clock = clock
        self.retry = retry
        self.stuck_after_seconds = stuck_after_seconds
        self.rng = rng or random.Random()
        self._last_sweep = 0.0

    async def record(self, outcomes: list[Outcome], token: uuid.UUID) -> None:
        """One transaction for a group of outcomes: `sent` + notification.sent; a retry (`pending` again, later);
        `failed` + notification.failed (+ a suppression, + the fallback channel's record); `unknown` +
        notification.failed with `outcome_unknown` (the provider may have taken it: no retry, no fallback);
        `held` + notification.held. `token` is the claim the rows came from (a held row must still be its).

        Retried on transient database errors (a lost connection, a serialization failure, a failover) for up to
        half of `sending_stuck_after_seconds`: the provider may already have the message, and an outcome lost
        here would end `unknown` at the sweep. Safe to repeat: every write is conditional on the row still being
        `sending` (or this claim's), so a retry after a commit whose answer was lost finds nothing left to do."""
        now = self.clock.now()
        plan = self._plan(outcomes, now)
        give_up_at = time.monotonic() + self.stuck_after_seconds / 2
        backoff = 0.05
        while True:
            try:
                async with self.sessions() as session, session.begin():
                    counted = await self._write(session, plan, token, now)
                break
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + backoff >= give_up_at:
                    raise
                OUTCOME_WRITE_RETRIES.inc()
                log.warning("recording %d outcomes failed (%s); retrying in %.2fs", len(outcomes), exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        for (channel, outcome), n in counted.items():
            MESSAGES.labels(channel=channel, outcome=outcome).inc(n)

    def _plan(self, outcomes: list[Outcome], now: datetime) -> _Plan:
        """What each outcome asks for (pure, outside the transaction: a retried write keeps the same verdicts)."""
        plan = _Plan()
        for o in outcomes:
            if o.held is not None:
                plan.held.append(o)
            elif o.receipt is not None:
                plan.sent.append(o)
            else:
                assert o.error is not None
                verdict = after_failure(self.retry, int(o.row["attempts"]) + 1, o.error, now, self.rng)
                if isinstance(verdict, RetryAt):
                    plan.retries.append((o, verdict))
                else:
                    plan.failed.append((o, verdict))
        return plan

    async def _write(
        self, session: AsyncSession, plan: _Plan, token: uuid.UUID, now: datetime
    ) -> collections.Counter[tuple[str, str]]:
        counted: collections.Counter[tuple[str, str]] = collections.Counter()
        events: list[Envelope[Any]] = []
        follow_ups: list[dict[str, Any]] = []
        if plan.held:
            events.extend(await self._hold_claimed(session, plan.held, token, now, counted))
        if plan.sent:
            receipts = [(o.row["id"], o.receipt) for o in plan.sent if o.receipt is not None]
            ids = [rid for rid, _ in receipts]
            pmids = [r.provider_message_id for _, r in receipts]
            providers = [r.provider for _, r in receipts]
            won = await delivery_records.mark_sent(session, ids, pmids, providers, now)
            if len(won) < len(plan.sent):
                await delivery_records.keep_late_receipts(session, ids, pmids, providers)
                log.warning(
                    "%d provider answers came after their delivery had left `sending` (written off as unknown by "
                    "the stuck sweep, or recorded already): not recorded again",
                    len(plan.sent) - len(won),
                )
            for o in plan.sent:
                if o.row["id"] in won and o.receipt is not None:
                    counted[(o.row["channel"], "sent")] += 1
                    events.append(
                        sent_event(
                            o.row,
                            o.send.message.recipient,
                            now,
                            provider=o.receipt.provider,
                            provider_message_id=o.receipt.provider_message_id,
                        )
                    )
        if plan.retries:
            channel_of = {o.row["id"]: o.row["channel"] for o, _ in plan.retries}
            for rid in await delivery_records.mark_retry(
                session,
                [o.row["id"] for o, _ in plan.retries],
                [v.at for _, v in plan.retries],
                [o.error.reason if o.error else "" for o, _ in plan.retries],
            ):
                counted[(channel_of[rid], "retry")] += 1
        if plan.failed:
            won = await delivery_records.mark_failed(
                session,
                [o.row["id"] for o, _ in plan.failed],
                ["unknown" if o.error and o.error.outcome_unknown else "failed" for o, _ in plan.failed],
                [v.reason for _, v in plan.failed],
            )
            for o, verdict in plan.failed:
                if o.row["id"] not in won or o.error is None:
                    continue
                row, unknown = o.row, o.error.outcome_unknown
                counted[(row["channel"], "unknown" if unknown else "failed")] += 1
                events.append(
                    failed_event(
                        row,
                        o.send.message.recipient,
                        now,
                        provider=o.send.provider,
                        reason=verdict.reason,
                        permanent=verdict.permanent,
                        outcome_unknown=unknown,
                    )
                )
                if unknown:
                    continue  # it may have reached the debtor: no suppression, no second channel for the step
                kind = suppression_key(row["channel"])
                if o.error.hard_bounce and kind:
                    events.extend(
                        await add_suppression(
                            session,
                            row["tenant_id"],
                            kind,
                            o.send.message.recipient,
                            "hard_bounce",
                            row["customer_id"],
                            row["channel"],
                            o.error.reason,
                            now,
                        )
                    )
                nxt = fallback_row(row, now, verdict.reason)
                if nxt is not None:
                    follow_ups.append(nxt)
        await insert_deliveries(session, follow_ups)
        await self.outbox.add(session, events)
        return counted

    async def _hold_claimed(
        self,
        session: AsyncSession,
        held: list[Outcome],
        token: uuid.UUID,
        now: datetime,
        counted: collections.Counter[tuple[str, str]],
    ) -> list[Envelope[Any]]:
        """Rows the gate found outside their window: `held` + notification.held - for the rows that were
        still this batch's claim (a cancelled or taken-over row is someone else's story)."""
        ids, reasons = [o.row["id"] for o in held], [o.held.reason for o in held if o.held]
        mine = await claims.hold_claimed(session, ids, reasons, token)
        events = []
        for o in held:
            if o.row["id"] in mine and o.held is not None:
                counted[(o.row["channel"], "held")] += 1
                events.append(held_event(o.row, o.send.message.recipient, now, outside=o.held))
        return events

    async def sweep_stuck(self, now: datetime) -> None:
        """`sending` too long (the process died during the call): `unknown` + notification.failed with
        `outcome_unknown`, never re-sent. The UPDATE is conditional on `sending`, as is every outcome write: a
        call answered at this moment is either recorded or written off here, not both."""
        if time.monotonic() - self._last_sweep < min(30.0, self.stuck_after_seconds / 2):
            return
        self._last_sweep = time.monotonic()
        reason = (
            "outcome unknown: the notifier stopped during the provider call; "
            "not re-sent (at most once) - check the provider's log"
        )
        async with self.sessions() as session, session.begin():
            stuck = await delivery_records.mark_stuck_unknown(session, self.stuck_after_seconds, reason)
            events = [
                failed_event(
                    r,
                    r["recipient"],
                    now,
                    provider=r["provider"],
                    reason=reason,
                    permanent=True,
                    outcome_unknown=True,
                )
                for r in stuck
            ]
            await self.outbox.add(session, events)
        for r in stuck:
            MESSAGES.labels(channel=r["channel"], outcome="unknown").inc()
        if stuck:
            log.error("%d deliveries were left `sending` by a crash; marked unknown, not re-sent", len(stuck))
