"""The dispatcher: claims due deliveries, takes the last look, and sends each at most once.

One batch, three steps:
1. (no transaction) the ledger projection must hold every ledger event on the broker right now;
2. claim transaction: due rows FOR UPDATE SKIP LOCKED (replicas share the work), decide each (skip, fail,
   or render and send), mark the ones to send `sending` and COMMIT - before any provider call;
3. provider calls run concurrently; one transaction records every outcome and its event.
A crash between 2 and 3 leaves rows `sending`: they are never picked again (only `pending` rows are), so a
message is never sent twice; after `sending_stuck_after_seconds` they are marked `unknown` and reported.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import Counter
from sqlalchemy import and_, bindparam, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_events.envelope import Envelope, EventData, new_event
from dunning_events.events import ConsentRevoked, NotificationFailed, NotificationSent, NotificationSkipped
from dunning_events.outbox import OutboxWriter
from dunning_events.tracing import resumed_span
from dunning_kit.clock import Clock
from notifier.adapters import orm
from notifier.adapters.ledger_watermark import LedgerWatermark
from notifier.domain.last_look import ProjectedInvoice
from notifier.domain.messages import ChannelProvider, PermanentSendError, SendError, SendReceipt
from notifier.domain.recipients import mask, suppression_key
from notifier.domain.rendering import TemplateSource
from notifier.domain.retry import GiveUp, RetryAt, RetryPolicy, after_failure
from notifier.domain.tenant_config import TenantConfig
from notifier.service_layer.compose import BatchContext, Composer, Fail, Recipient, Send, Skip
from notifier.service_layer.steps import idempotency_key, insert_deliveries

log = logging.getLogger("notifier.dispatcher")
SOURCE = "notifier"

MESSAGES = Counter("notifier_messages_total", "Delivery outcomes", ["channel", "outcome"])
HELD = Counter("notifier_sends_held_total", "Dispatch rounds held because the ledger projection was behind")


@dataclass
class Outcome:
    row: dict[str, Any]
    send: Send
    receipt: SendReceipt | None = None
    error: SendError | None = None


# The per-batch statements take one array per column (asyncpg encodes them in C): SQLAlchemy's executemany
# builds a parameter dict per row in Python, which cost more than the statements themselves.
_CLAIM = text(
    "SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= :now "
    "ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK_SENDING = text(
    """
    UPDATE deliveries AS d
    SET status = 'sending', provider = u.provider, recipient = u.recipient, template_id = u.template,
        locale = u.locale, subject = u.subject, body_text = u.body_text, body_html = u.body_html,
        attempts = d.attempts + 1, updated_at = now()
    FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_provider AS text[]), CAST(:b_recipient AS text[]),
                CAST(:b_template AS text[]), CAST(:b_locale AS text[]), CAST(:b_subject AS text[]),
                CAST(:b_text AS text[]), CAST(:b_html AS text[]))
         AS u(id, provider, recipient, template, locale, subject, body_text, body_html)
    WHERE d.id = u.id
    """
)
_CLOSE = text(
    """
    UPDATE deliveries AS d SET status = u.status, error = u.error, recipient = u.recipient, updated_at = now()
    FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_status AS text[]), CAST(:b_error AS text[]),
                CAST(:b_recipient AS text[])) AS u(id, status, error, recipient)
    WHERE d.id = u.id
    """
)
# `unknown` too: a late outcome of a call the stuck-sweep gave up on still gets recorded.
_MARK_SENT = text(
    """
    UPDATE deliveries AS d
    SET status = 'sent', provider_message_id = u.pmid, provider = u.provider, error = NULL, sent_at = :now,
        updated_at = now()
    FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_pmid AS text[]), CAST(:b_provider AS text[])) AS u(id, pmid, provider)
    WHERE d.id = u.id AND d.status IN ('sending', 'unknown')
    """
)
_JSON_COLUMNS = ("step", "fallback_channels", "trace_context")


def _decoded(row: Mapping[str, Any]) -> dict[str, Any]:
    """A claimed row as a dict, its JSONB columns parsed (a textual query returns them as JSON text)."""
    out = dict(row)
    for key in _JSON_COLUMNS:
        if isinstance(out[key], str | bytes):
            out[key] = orjson.loads(out[key])
    return out


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """[{"b_id": .., "b_x": ..}, ...] -> {"b_id": [..], "b_x": [..]}: the arrays an unnest statement takes."""
    return {key: [r[key] for r in rows] for key in rows[0]}


class ProviderRegistry:
    """Provider adapters by name (smtp, sendgrid, twilio_sms, twilio_voice, print_api, drop_folder, ...)."""

    def __init__(self, providers: Mapping[str, ChannelProvider]) -> None:
        self.providers = dict(providers)

    def get(self, name: str) -> ChannelProvider | None:
        return self.providers.get(name)

    async def aclose(self) -> None:
        for provider in {id(p): p for p in self.providers.values()}.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # closing must never block shutdown
                    log.warning("closing provider %s: %s", provider.name, exc)


def _event(data: EventData, tenant_id: str, now: datetime, correlation_id: Any) -> Envelope[Any]:
    return new_event(data, tenant_id=tenant_id, source=SOURCE, occurred_at=now, correlation_id=correlation_id)


def _invoice_ids(row: Mapping[str, Any]) -> list[str]:
    return [inv["invoice_id"] for inv in row["step"]["invoices"]]


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


class Dispatcher:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbox: OutboxWriter,
        clock: Clock,
        composer: Composer,
        providers: ProviderRegistry,
        retry: RetryPolicy,
        batch_size: int,
        watermark: LedgerWatermark | None,
        stuck_after_seconds: float,
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.clock = clock
        self.composer = composer
        self.providers = providers
        self.retry = retry
        self.batch_size = batch_size
        self.watermark = watermark
        self.stuck_after_seconds = stuck_after_seconds
        self.rng = rng or random.Random()
        self._last_sweep = 0.0
        # Fault-injection seam for tests: runs after the provider calls returned, before outcomes are recorded.
        self.after_send_hook: Callable[[list[Outcome]], Awaitable[None]] | None = None

    # ------------------------------------------------------------------ the timer's entry points

    async def dispatch_due(self, now: datetime) -> int:
        await self._sweep_stuck(now)
        if not await self._has_due(now):
            return 0
        if self.watermark is not None:
            ok, lagging = await self.watermark.caught_up()
            if not ok:
                HELD.inc()
                log.warning("ledger projection behind the broker %s: holding sends (invariant 1)", lagging)
                return 0
        handled, sends = await self._claim(now)
        if sends:
            outcomes = list(await asyncio.gather(*(self._attempt(row, send) for row, send in sends)))
            if self.after_send_hook is not None:
                await self.after_send_hook(outcomes)
            await self._record(outcomes)
        return handled

    async def due_stats(self, now: datetime) -> tuple[int, float]:
        d = orm.deliveries.c
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(
                        func.count(), func.coalesce(func.extract("epoch", now - func.min(d.next_attempt_at)), 0)
                    ).where(d.status == "pending", d.next_attempt_at <= now)
                )
            ).one()
        return int(row[0]), float(row[1])

    # ------------------------------------------------------------------ claim, last look, decide

    async def _has_due(self, now: datetime) -> bool:
        d = orm.deliveries.c
        async with self.sessions() as session:
            return (
                await session.scalar(select(d.id).where(d.status == "pending", d.next_attempt_at <= now).limit(1))
            ) is not None

    async def _claim(self, now: datetime) -> tuple[int, list[tuple[dict[str, Any], Send]]]:
        sends: list[tuple[dict[str, Any], Send]] = []
        async with self.sessions() as session, session.begin():
            rows = [
                _decoded(r)
                for r in (await session.execute(_CLAIM, {"now": now, "limit": self.batch_size})).mappings().all()
            ]
            if not rows:
                return 0, []
            ctx = await self._load_context(session, rows)
            recipients: dict[Any, Recipient] = {}
            for row in rows:
                recipients[row["id"]] = self.composer.recipient(
                    row, ctx.customers.get((row["tenant_id"], row["customer_id"])), ctx.config(row["tenant_id"])
                )
            ctx.suppressed = await self._load_suppressions(session, rows, recipients)
            marks: list[dict[str, Any]] = []
            events: list[Envelope[Any]] = []
            closed: list[dict[str, Any]] = []
            follow_ups: list[dict[str, Any]] = []
            for row in rows:
                decision = self.composer.decide(row, ctx, recipients[row["id"]], now)
                if isinstance(decision, Send):
                    m = decision.message
                    marks.append(
                        {
                            "b_id": row["id"],
                            "b_provider": decision.provider,
                            "b_recipient": m.recipient,
                            "b_template": decision.template_id,
                            "b_locale": decision.locale,
                            "b_subject": m.subject,
                            "b_text": m.sms
                            if row["channel"] == "sms"
                            else (m.voice if row["channel"] == "voice" else m.text),
                            "b_html": m.html,
                        }
                    )
                    sends.append((row, decision))
                    continue
                if isinstance(decision, Skip):
                    status, reason = "skipped", decision.reason
                    data: EventData = NotificationSkipped(
                        customer_id=row["customer_id"],
                        delivery_id=str(row["id"]),
                        step_id=row["step_id"],
                        channel=row["channel"],
                        recipient=mask(recipients[row["id"]].address),
                        invoice_ids=_invoice_ids(row),
                        reason=reason,
                    )
                    go_on = decision.fallback
                else:
                    assert isinstance(decision, Fail)
                    status, reason = "failed", decision.reason
                    data = NotificationFailed(
                        customer_id=row["customer_id"],
                        delivery_id=str(row["id"]),
                        step_id=row["step_id"],
                        channel=row["channel"],
                        recipient=mask(decision.recipient),
                        invoice_ids=_invoice_ids(row),
                        reason=reason,
                        permanent=True,
                    )
                    go_on = True
                MESSAGES.labels(channel=row["channel"], outcome=status).inc()
                closed.append(
                    {
                        "b_id": row["id"],
                        "b_status": status,
                        "b_error": reason,
                        "b_recipient": recipients[row["id"]].address,
                    }
                )
                events.append(_event(data, row["tenant_id"], now, row.get("correlation_id")))
                nxt = fallback_row(row, now, reason) if go_on else None
                if nxt is not None:
                    follow_ups.append(nxt)
            if marks:
                # Committed before any provider call: this is what makes the send at most once.
                await session.execute(_MARK_SENDING, _columns(marks))
            if closed:
                await session.execute(_CLOSE, _columns(closed))
            await insert_deliveries(session, follow_ups)
            await self.outbox.add(session, events)
        return len(rows), sends

    async def _load_context(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> BatchContext:
        ctx = BatchContext()
        tenants = sorted({r["tenant_id"] for r in rows})
        c, b = orm.customers.c, orm.invoice_balances.c
        customer_keys = sorted({(r["tenant_id"], r["customer_id"]) for r in rows})
        for rec in (
            await session.execute(select(orm.customers).where(tuple_(c.tenant_id, c.customer_id).in_(customer_keys)))
        ).mappings():
            ctx.customers[(rec["tenant_id"], rec["customer_id"])] = rec
        invoice_keys = sorted({(r["tenant_id"], inv["invoice_id"]) for r in rows for inv in r["step"]["invoices"]})
        if invoice_keys:
            result = await session.execute(
                select(b.tenant_id, b.invoice_id, b.balance_minor, b.status).where(
                    tuple_(b.tenant_id, b.invoice_id).in_(invoice_keys)
                )
            )
            for t, i, bal, st in result.all():
                ctx.balances[(t, i)] = ProjectedInvoice(int(bal), st)
        ts = orm.tenant_settings.c
        for t, cfg in (await session.execute(select(ts.tenant_id, ts.config).where(ts.tenant_id.in_(tenants)))).all():
            try:
                ctx.configs[t] = TenantConfig.model_validate(cfg)
            except ValueError as exc:  # stored config predates a validation rule: use defaults, say so
                log.error("tenant %s: stored channel config is invalid (%s); using defaults", t, exc)
        tp = orm.templates.c
        template_ids = sorted({r["step"]["template_id"] for r in rows})
        result = await session.execute(
            select(orm.templates).where(tp.tenant_id.in_(tenants), tp.template_id.in_(template_ids))
        )
        for rec in result.mappings():
            ctx.templates.setdefault(rec["tenant_id"], {})[(rec["template_id"], rec["locale"])] = template_from_row(rec)
        return ctx

    async def _load_suppressions(
        self, session: AsyncSession, rows: Sequence[Mapping[str, Any]], recipients: Mapping[Any, Recipient]
    ) -> dict[tuple[str, str, str], str]:
        keys = set()
        for row in rows:
            kind = suppression_key(row["channel"])
            address = recipients[row["id"]].address
            if kind and address:
                keys.add((row["tenant_id"], kind, address))
        if not keys:
            return {}
        s = orm.suppressions.c
        result = await session.execute(
            select(s.tenant_id, s.kind, s.address, s.reason).where(
                tuple_(s.tenant_id, s.kind, s.address).in_(sorted(keys))
            )
        )
        return {(t, k, a): r for t, k, a, r in result.all()}

    # ------------------------------------------------------------------ the provider call

    async def _attempt(self, row: dict[str, Any], send: Send) -> Outcome:
        provider = self.providers.get(send.provider)
        if provider is None:
            return Outcome(row, send, error=PermanentSendError(f"provider '{send.provider}' is not configured"))
        try:
            with resumed_span(
                f"notifier send {row['channel']}",
                row.get("trace_context"),
                **{"dunning.delivery_id": str(row["id"]), "dunning.provider": send.provider},
            ):
                receipt = await provider.send(send.message)
        except SendError as exc:
            return Outcome(row, send, error=exc)
        except Exception as exc:
            # Not classified: the message may or may not have left. At most once says do not retry.
            log.exception("provider %s raised unexpectedly for delivery %s", send.provider, row["id"])
            return Outcome(
                row, send, error=PermanentSendError(f"{send.provider}: unexpected {type(exc).__name__}: {exc}")
            )
        return Outcome(row, send, receipt=receipt)

    # ------------------------------------------------------------------ record outcomes

    async def _record(self, outcomes: list[Outcome]) -> None:
        now = self.clock.now()
        d = orm.deliveries.c
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
                "invoice_ids": _invoice_ids(row),
            }
            corr = row.get("correlation_id")
            if o.receipt is not None:
                MESSAGES.labels(channel=row["channel"], outcome="sent").inc()
                sent.append(
                    {"b_id": row["id"], "b_pmid": o.receipt.provider_message_id, "b_provider": o.receipt.provider}
                )
                events.append(
                    _event(
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
                _event(
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
            # `unknown` too: a late outcome of a call the stuck-sweep gave up on still gets recorded.
            in_flight = or_(d.status == "sending", d.status == "unknown")  # no IN: executemany
            if sent:
                await session.execute(_MARK_SENT, {**_columns(sent), "now": now})
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

    # ------------------------------------------------------------------ crash recovery (report, never re-send)

    async def _sweep_stuck(self, now: datetime) -> None:
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
                _event(
                    NotificationFailed(
                        customer_id=r["customer_id"],
                        delivery_id=str(r["id"]),
                        step_id=r["step_id"],
                        channel=r["channel"],
                        recipient=mask(r["recipient"]),
                        invoice_ids=_invoice_ids(r),
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


def template_from_row(rec: Mapping[str, Any]) -> TemplateSource:
    return TemplateSource(
        template_id=rec["template_id"],
        locale=rec["locale"],
        subject=rec["subject"],
        text=rec["body_text"],
        html=rec["body_html"],
        sms=rec["sms"],
        voice=rec["voice"],
        origin="tenant",
    )


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
        _event(
            ConsentRevoked(customer_id=customer_id, channel=ch, address=mask(address), reason=reason),  # type: ignore[arg-type]
            tenant_id,
            now,
            None,
        )
        for ch in channels
    ]
