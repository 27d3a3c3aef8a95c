"""What a delivery's outcome writes: its status, the notification event, and what follows from it (a
suppression and consent.revoked after a hard bounce, the fallback channel's record) - recorded in groups as
the provider calls come back; and the report of calls a crash left in doubt (`unknown`, never re-sent)."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import and_, bindparam, func, or_, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import ConsentRevoked, NotificationFailed, NotificationHeld, NotificationSent
from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from notifier.adapters import orm
from notifier.domain.contact_window import OutsideWindow
from notifier.domain.messages import SendError, SendReceipt
from notifier.domain.recipients import mask, suppression_key
from notifier.domain.retry import GiveUp, RetryAt, RetryPolicy, after_failure
from notifier.service_layer.compose import Send
from notifier.service_layer.steps import idempotency_key, insert_deliveries

log = logging.getLogger("notifier.dispatcher")
SOURCE = "notifier"

MESSAGES = Counter("notifier_messages_total", "Delivery outcomes", ["channel", "outcome"])


@dataclass
class Outcome:
    row: dict[str, Any]
    send: Send
    receipt: SendReceipt | None = None
    error: SendError | None = None
    held: OutsideWindow | None = None  # reached the gate outside its contact window: not sent


# `unknown` too: a late outcome of a call the stuck-sweep gave up on still gets recorded. `id = ANY` puts the
# primary key in charge: this runs for every group of outcomes, and a join on unnest() alone may be planned
# as a scan of the whole table.
_MARK_SENT = text(
    """
    UPDATE deliveries AS d
    SET status = 'sent', provider_message_id = u.pmid, provider = u.provider, error = NULL, sent_at = :now,
        updated_at = now()
    FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_pmid AS text[]), CAST(:b_provider AS text[])) AS u(id, pmid, provider)
    WHERE d.id = ANY(CAST(:b_id AS uuid[])) AND d.id = u.id AND d.status IN ('sending', 'unknown')
    """
)
# Held at the gate: only while the row is still this batch's claim (not cancelled, not taken over).
_HOLD_CLAIMED = text(
    """
    UPDATE deliveries
    SET status = 'held', error = (CAST(:b_error AS text[]))[array_position(CAST(:b_id AS uuid[]), id)],
        claimed_until = NULL, updated_at = now()
    WHERE id = ANY(CAST(:b_id AS uuid[])) AND status = 'claimed' AND claim_token = :token
    RETURNING id
    """
)


def as_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """[{"b_id": .., "b_x": ..}, ...] -> {"b_id": [..], "b_x": [..]}: the arrays an unnest statement takes."""
    return {key: [r[key] for r in rows] for key in rows[0]}


def notification_event(data: EventData, tenant_id: str, now: datetime, correlation_id: Any) -> Envelope[Any]:
    return new_event(data, tenant_id=tenant_id, source=SOURCE, occurred_at=now, correlation_id=correlation_id)


def invoice_ids(row: Mapping[str, Any]) -> list[str]:
    return [inv["invoice_id"] for inv in row["step"]["invoices"]]


def held_event(
    row: Mapping[str, Any], recipient: str | None, outside: OutsideWindow, now: datetime
) -> NotificationHeld:
    return NotificationHeld(
        customer_id=row["customer_id"],
        delivery_id=str(row["id"]),
        step_id=row["step_id"],
        channel=row["channel"],
        recipient=mask(recipient),
        invoice_ids=invoice_ids(row),
        reason=outside.reason,
        held_at=now,
        deliver_from=outside.deliver_from,
        deliver_until=outside.deliver_until,
    )


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


async def add_suppression(
    session: AsyncSession,
    tenant_id: str,
    kind: str,
    address: str,
    reason: str,
    customer_id: str | None,
    channel: str,
    detail: str | None,
    now: datetime,
) -> list[Envelope[Any]]:
    """Suppress an address or number; a new suppression also yields consent.revoked for the policy engine."""
    inserted = (
        await session.execute(
            insert(orm.suppressions)
            .values(
                tenant_id=tenant_id,
                kind=kind,
                address=address,
                reason=reason,
                customer_id=customer_id,
                detail=detail,
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(orm.suppressions.c.address)
        )
    ).first()
    if inserted is None or customer_id is None:
        return []
    channels = [channel] if kind == "email" else ["sms", "voice"]  # a STOP on a number stops calls too
    return [
        notification_event(
            ConsentRevoked(customer_id=customer_id, channel=ch, address=mask(address), reason=reason),  # type: ignore[arg-type]
            tenant_id,
            now,
            None,
        )
        for ch in channels
    ]


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
        `failed` + notification.failed (+ a suppression, + the fallback channel's record); `held` +
        notification.held. `token` is the claim the rows came from (a held row must still be its)."""
        now = self.clock.now()
        d = orm.deliveries.c
        held = [o for o in outcomes if o.held is not None]
        outcomes = [o for o in outcomes if o.held is None]
        sent: list[dict[str, Any]] = []
        retries: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        events: list[Envelope[Any]] = []
        follow_ups: list[dict[str, Any]] = []
        suppress: list[dict[str, Any]] = []
        for o in outcomes:
            row, msg = o.row, o.send.message
            common = {
                "customer_id": row["customer_id"],
                "delivery_id": str(row["id"]),
                "step_id": row["step_id"],
                "channel": row["channel"],
                "recipient": mask(msg.recipient),
                "invoice_ids": invoice_ids(row),
            }
            corr = row.get("correlation_id")
            if o.receipt is not None:
                MESSAGES.labels(channel=row["channel"], outcome="sent").inc()
                sent.append(
                    {"b_id": row["id"], "b_pmid": o.receipt.provider_message_id, "b_provider": o.receipt.provider}
                )
                events.append(
                    notification_event(
                        NotificationSent(
                            **common, provider=o.receipt.provider, provider_message_id=o.receipt.provider_message_id
                        ),
                        row["tenant_id"],
                        now,
                        corr,
                    )
                )
                continue
            assert o.error is not None
            attempts = int(row["attempts"]) + 1
            verdict = after_failure(self.retry, attempts, o.error, now, self.rng)
            if isinstance(verdict, RetryAt):
                MESSAGES.labels(channel=row["channel"], outcome="retry").inc()
                retries.append({"b_id": row["id"], "b_at": verdict.at, "b_error": o.error.reason})
                continue
            assert isinstance(verdict, GiveUp)
            MESSAGES.labels(channel=row["channel"], outcome="failed").inc()
            failed.append({"b_id": row["id"], "b_error": verdict.reason})
            events.append(
                notification_event(
                    NotificationFailed(
                        **common, provider=o.send.provider, reason=verdict.reason, permanent=verdict.permanent
                    ),
                    row["tenant_id"],
                    now,
                    corr,
                )
            )
            kind = suppression_key(row["channel"])
            if o.error.hard_bounce and kind:
                suppress.append({"row": row, "kind": kind, "address": msg.recipient, "detail": o.error.reason})
            nxt = fallback_row(row, now, verdict.reason)
            if nxt is not None:
                follow_ups.append(nxt)
        async with self.sessions() as session, session.begin():
            if held:
                events.extend(await self._hold_claimed(session, held, token, now))
            # `unknown` too: a late outcome of a call the stuck-sweep gave up on still gets recorded.
            in_flight = or_(d.status == "sending", d.status == "unknown")  # no IN: executemany
            if sent:
                await session.execute(_MARK_SENT, {**as_columns(sent), "now": now})
            if retries:
                await session.execute(
                    update(orm.deliveries)
                    .where(and_(d.id == bindparam("b_id"), in_flight))
                    .values(
                        status="pending",
                        next_attempt_at=bindparam("b_at"),
                        error=bindparam("b_error"),
                        updated_at=func.now(),
                    ),
                    retries,
                )
            if failed:
                await session.execute(
                    update(orm.deliveries)
                    .where(and_(d.id == bindparam("b_id"), in_flight))
                    .values(status="failed", error=bindparam("b_error"), updated_at=func.now()),
                    failed,
                )
            for s in suppress:
                events.extend(
                    await add_suppression(
                        session,
                        s["row"]["tenant_id"],
                        s["kind"],
                        s["address"],
                        "hard_bounce",
                        s["row"]["customer_id"],
                        s["row"]["channel"],
                        s["detail"],
                        now,
                    )
                )
            await insert_deliveries(session, follow_ups)
            await self.outbox.add(session, events)

    async def _hold_claimed(
        self, session: AsyncSession, held: list[Outcome], token: uuid.UUID, now: datetime
    ) -> list[Envelope[Any]]:
        """Rows the gate found outside their window: `held` + notification.held - for the rows that were
        still this batch's claim (a cancelled or taken-over row is someone else's story)."""
        columns = {"b_id": [o.row["id"] for o in held], "b_error": [o.held.reason for o in held if o.held]}
        mine = set((await session.execute(_HOLD_CLAIMED, {**columns, "token": token})).scalars())
        events = []
        for o in held:
            if o.row["id"] in mine and o.held is not None:
                MESSAGES.labels(channel=o.row["channel"], outcome="held").inc()
                data = held_event(o.row, o.send.message.recipient, o.held, now)
                events.append(notification_event(data, o.row["tenant_id"], now, o.row.get("correlation_id")))
        return events

    async def sweep_stuck(self, now: datetime) -> None:
        """`sending` too long (the process died during the call): `unknown` + notification.failed, never re-sent."""
        if time.monotonic() - self._last_sweep < min(30.0, self.stuck_after_seconds / 2):
            return
        self._last_sweep = time.monotonic()
        d = orm.deliveries.c
        reason = (
            "outcome unknown: the notifier stopped during the provider call; "
            "not re-sent (at most once) - check the provider's log"
        )
        async with self.sessions() as session, session.begin():
            # Wall-clock (database) time: a simulated clock jumping days must not expire an in-flight call.
            stuck = (
                (
                    await session.execute(
                        update(orm.deliveries)
                        .where(
                            d.status == "sending",
                            d.updated_at < func.now() - text(f"interval '{int(self.stuck_after_seconds)} seconds'"),
                        )
                        .values(status="unknown", error=reason, updated_at=func.now())
                        .returning(orm.deliveries)
                    )
                )
                .mappings()
                .all()
            )
            events = [
                notification_event(
                    NotificationFailed(
                        customer_id=r["customer_id"],
                        delivery_id=str(r["id"]),
                        step_id=r["step_id"],
                        channel=r["channel"],
                        recipient=mask(r["recipient"]),
                        invoice_ids=invoice_ids(r),
                        provider=r["provider"],
                        reason=reason,
                        permanent=True,
                    ),
                    r["tenant_id"],
                    now,
                    r.get("correlation_id"),
                )
                for r in stuck
            ]
            await self.outbox.add(session, events)
        if stuck:
            log.error("%d deliveries were left `sending` by a crash; marked unknown, not re-sent", len(stuck))
