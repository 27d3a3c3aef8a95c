"""The dispatcher: claims due deliveries, takes the last look, and sends each at most once.

One batch:
1. (no transaction) the ledger projection must hold every ledger event on the broker right now;
2. claim transaction: due `pending` rows (and `claimed` rows whose lease has expired: their dispatcher died)
   FOR UPDATE SKIP LOCKED, so replicas share the work; decide each - skip, fail, hold (outside its contact
   window) or render - and mark the ones to send `claimed` with the batch's claim token and a lease
   (`claimed_until`, database time, renewed while the batch works). COMMIT. Nothing has left yet, so a
   `claimed` row is safe to send after a crash: another dispatcher takes it over when the lease expires;
3. each row then passes the send gate (send_gate.py) on its own: a slot of its provider (as many as the
   provider's connections), the contact window checked again with the clock, its `sending` mark committed
   (group-committed with whatever else waits at the gate, and only while the row is still this batch's
   claim) - and only then the provider call;
4. outcomes are recorded as they come back (outcomes.py), in groups of RECORD_GROUP (or what came within
   RECORD_GROUP_WAIT_S), not once at the end of the batch - so a crash leaves few calls the provider answered
   unrecorded.

A slow partner stalls nobody else. Steps 3 and 4 run as the batch's own task: the dispatcher claims its next
batch as soon as it has room (`max_in_hand` rows claimed and not yet recorded or handed back, freed row by row
as outcomes are recorded), not when the batch's slowest call returns. A call lasts at most its total deadline
(PROVIDER_DEADLINE_SECONDS), and a tenant's own endpoint (webhooks) gets at most
WEBHOOK_MAX_CONNECTIONS_PER_TENANT of the provider's slots, so one tenant's slow endpoint cannot take every
webhook connection from the others.

What a crash can leave in doubt is therefore what was `sending`: at most the slots' worth of calls, plus a
group of answered but unrecorded ones. Those are never picked again (only `pending` and expired `claimed`
rows are) and after `sending_stuck_after_seconds` (wall time) they are marked `unknown` and reported with
notification.failed. Everything else a dead dispatcher held is `claimed` and is sent by whoever takes it over.
On a graceful stop the dispatcher stops admitting sends, lets the open calls finish and hands its remaining
claims back (`pending`).

A held delivery (the contact window had closed, or not opened) is neither sent nor failed: no retry is
counted and no fallback channel is tried; notification.held asks the policy engine for a new window, and
dunning.step.replanned (steps.py) makes it `pending` again, same delivery and idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_events.consumer import is_transient
from dunning_events.envelope import Envelope
from dunning_events.outbox import OutboxWriter
from dunning_events.tracing import resumed_span
from dunning_kit.clock import Clock
from dunning_kit.data_keys import DEV_DATA_ENCRYPTION_KEYS, Keyring
from notifier.adapters import claims
from notifier.adapters.channel_secrets import ChannelSecrets
from notifier.adapters.claims import DecidedRow, RenderedClaim
from notifier.adapters.delivery_records import insert_deliveries
from notifier.adapters.ledger_watermark import LedgerWatermark
from notifier.domain.contact_window import outside_window
from notifier.domain.messages import ChannelProvider, OutcomeUnknownError, PermanentSendError, SendError
from notifier.domain.retry import RetryPolicy
from notifier.service_layer.compose import Composer, Fail, Hold, Send, Skip
from notifier.service_layer.decision_context import load_decision_context
from notifier.service_layer.notification_events import failed_event, held_event, skipped_event
from notifier.service_layer.outcomes import MESSAGES, Outcome, OutcomeRecorder, fallback_row
from notifier.service_layer.send_gate import SendGate

log = logging.getLogger("notifier.dispatcher")

# Outcomes are recorded in groups of RECORD_GROUP, or after RECORD_GROUP_WAIT_S for a smaller one: a commit
# (and a relay batch) per handful of sends cost ~15% of a send's CPU. A group is also what a crash can leave
# recorded too late - reported `unknown` though the provider took it - so it stays small.
RECORD_GROUP = 64
RECORD_GROUP_WAIT_S = 0.1

# Longest the decisions of a batch hold the event loop before letting it run (see _claim).
_DECIDE_SLICE_S = 0.05

HELD = Counter("notifier_sends_held_total", "Dispatch rounds held because the ledger projection was behind")
LOST_CLAIMS = Counter(
    "notifier_claims_lost_total", "Claimed deliveries not sent by their batch: lease taken over, or cancelled"
)


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


class Dispatcher:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbox: OutboxWriter,
        clock: Clock,
        composer: Composer,
        providers: ProviderRegistry,
        gate: SendGate,
        retry: RetryPolicy,
        batch_size: int,
        watermark: LedgerWatermark | None,
        stuck_after_seconds: float,
        claim_lease_seconds: float,
        max_in_hand: int | None = None,
        rng: random.Random | None = None,
        secrets: ChannelSecrets | None = None,
    ) -> None:
        self.sessions = sessions
        self.secrets = secrets or ChannelSecrets(sessions, Keyring.parse(DEV_DATA_ENCRYPTION_KEYS))
        self.outbox = outbox
        self.clock = clock
        self.composer = composer
        self.providers = providers
        self.gate = gate
        self.batch_size = batch_size
        self.watermark = watermark
        self.claim_lease_seconds = claim_lease_seconds
        self.outcomes = OutcomeRecorder(
            sessions=sessions, outbox=outbox, clock=clock, retry=retry, stuck_after_seconds=stuck_after_seconds, rng=rng
        )
        self._stopping = False
        self._next_lease_check = 0.0
        # Claimed rows of running batches not yet recorded or handed back; a new claim takes only what fits.
        self.max_in_hand = max_in_hand or batch_size
        self._in_hand = 0
        self._room = asyncio.Event()
        # Rows past the gate (`sending`) whose outcome is not recorded yet: work not done, for due_stats.
        self._in_flight = 0
        self._batches: set[asyncio.Task[None]] = set()
        # Fault-injection seam for tests: runs after provider calls returned, before their outcomes are recorded.
        self.after_send_hook: Callable[[list[Outcome]], Awaitable[None]] | None = None

    def stop_sending(self) -> None:
        """Graceful stop: admit no more sends; open calls finish and are recorded, the rest of each batch's
        claims go back to `pending` (for another replica, or this one after its restart)."""
        self._stopping = True

    async def drain(self, timeout: float) -> None:
        """After stop_sending: wait for the running batches (their open calls end within their deadline);
        what is still running after `timeout` is cancelled - its `sending` rows end `unknown`, never re-sent."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while self._batches and loop.time() < until:
            await asyncio.wait(set(self._batches), timeout=until - loop.time())
        if self._batches:
            log.warning("%d dispatch batches still running at shutdown: cancelled", len(self._batches))
            for task in self._batches:
                task.cancel()
            await asyncio.gather(*self._batches, return_exceptions=True)

    # ------------------------------------------------------------------ the timer's entry points

    async def dispatch_due(self, now: datetime) -> int:
        if self._stopping:
            return 0
        await self.outcomes.sweep_stuck(now)
        pending, expired = await self._due(now)
        if not (pending or expired):
            return 0
        if self.watermark is not None:
            ok, lagging = await self.watermark.caught_up()
            if not ok:
                HELD.inc()
                log.warning("ledger projection behind the broker %s: holding sends (invariant 1)", lagging)
                return 0
        room = await self._wait_for_room()
        if not room:
            return 0
        token = uuid.uuid4()
        self._in_hand += room  # reserved while claiming: another loop must not claim the same room
        try:
            handled, sends = await self._claim(now, token, take_over=expired, limit=room)
        finally:
            self._in_hand -= room
        if not sends:
            return handled
        self._in_hand += len(sends)
        if self._stopping:  # stopped while claiming: drain() may be done already, so hand them back here
            await self._send_claimed(sends, token)
            return handled
        task = asyncio.create_task(self._send_claimed(sends, token), name="dispatch-batch")
        self._batches.add(task)
        task.add_done_callback(self._batch_done)
        return handled

    async def _wait_for_room(self) -> int:
        """How many rows the next claim may take: up to a batch, within `max_in_hand`. Waits (a second at most)
        while less than half a batch is free, so claims stay batches; a slow call holds only its own row."""
        want = min(self.batch_size, self.max_in_hand)
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.0
        while self.max_in_hand - self._in_hand < max(1, want // 2):
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), timeout=max(0.0, until - loop.time()))
            except TimeoutError:
                return 0
        return min(want, self.max_in_hand - self._in_hand)

    def _free(self, rows: int) -> None:
        if rows:
            self._in_hand -= rows
            self._room.set()

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return
        level = logging.WARNING if is_transient(exc) else logging.ERROR
        log.log(level, "dispatch batch failed: %s", exc, exc_info=exc)

    async def due_stats(self, now: datetime) -> tuple[int, float]:
        """Due `pending` rows plus every `claimed` one (in a dispatcher's hands, or waiting for its lease to
        expire after a crash): work that is not done yet."""
        async with self.sessions() as session:
            pending, oldest, claimed = await claims.open_work(session, now)
        overdue = (now - oldest).total_seconds() if oldest is not None else 0.0
        return pending + claimed + self._in_flight, overdue

    # ------------------------------------------------------------------ claim, last look, decide

    async def _due(self, now: datetime) -> tuple[bool, bool]:
        """(any `pending` row due, any claim whose lease expired) - cheap checks before the watermark and claim.

        Expired leases only follow a crash (or a stall), so they are looked for every few seconds, not every
        round: the partial index of claims holds the dead entries of every claim since the last vacuum, and
        min() walks them from the start."""
        look_for_expired = time.monotonic() >= self._next_lease_check
        if look_for_expired:
            self._next_lease_check = time.monotonic() + min(5.0, self.claim_lease_seconds / 3)
        async with self.sessions() as session:
            return await claims.due_work(session, now, look_for_expired)

    async def _claim(
        self, now: datetime, token: uuid.UUID, take_over: bool = True, limit: int | None = None
    ) -> tuple[int, list[tuple[dict[str, Any], Send]]]:
        sends: list[tuple[dict[str, Any], Send]] = []
        limit = limit or self.batch_size
        async with self.sessions() as session, session.begin():
            rows = await claims.claim_due(session, now, limit, take_over)
            if not rows:
                return 0, []
            ctx, recipients = await load_decision_context(session, rows, self.composer, self.secrets)
            rendered: list[RenderedClaim] = []
            events: list[Envelope[Any]] = []
            closed: list[DecidedRow] = []
            follow_ups: list[dict[str, Any]] = []
            since = time.perf_counter()
            for row in rows:
                decision = self.composer.decide(row, ctx, recipients[row["id"]], now)
                if time.perf_counter() - since > _DECIDE_SLICE_S:
                    # Rendering runs on the event loop (a thread hop per message would cost more than most
                    # renders); a template that used its render budget must not keep /healthz, the other
                    # dispatch loop and the consumers waiting too, so let them run between two decisions.
                    await asyncio.sleep(0)
                    since = time.perf_counter()
                if isinstance(decision, Send):
                    m = decision.message
                    text = m.sms if row["channel"] == "sms" else (m.voice if row["channel"] == "voice" else m.text)
                    rendered.append(
                        RenderedClaim(
                            id=row["id"],
                            provider=decision.provider,
                            recipient=m.recipient,
                            template_id=decision.template_id,
                            locale=decision.locale,
                            subject=m.subject,
                            text=text,
                            html=m.html,
                        )
                    )
                    sends.append((row, decision))
                    continue
                if isinstance(decision, Hold):
                    # Not a failure: no fallback, no attempt counted; the policy engine plans a new window.
                    status, reason = "held", decision.outside.reason
                    event = held_event(row, recipients[row["id"]].address, now, outside=decision.outside)
                    go_on = False
                elif isinstance(decision, Skip):
                    status, reason = "skipped", decision.reason
                    event = skipped_event(row, recipients[row["id"]].address, now, reason=reason)
                    go_on = decision.fallback
                else:
                    assert isinstance(decision, Fail)
                    status, reason = "failed", decision.reason
                    event = failed_event(row, decision.recipient, now, reason=reason, permanent=True)
                    go_on = True
                MESSAGES.labels(channel=row["channel"], outcome=status).inc()
                closed.append(DecidedRow(row["id"], status, reason, recipients[row["id"]].address))
                events.append(event)
                nxt = fallback_row(row, now, reason) if go_on else None
                if nxt is not None:
                    follow_ups.append(nxt)
            # Rendered and claimed, not yet handed to anyone: after a crash this is still safe to send.
            await claims.mark_claimed(session, rendered, token, self.claim_lease_seconds, now)
            await claims.close_decided(session, closed)
            await insert_deliveries(session, follow_ups)
            await self.outbox.add(session, events)
        return len(rows), sends

    # ------------------------------------------------------------------ through the gate, to the provider

    async def _send_claimed(self, sends: list[tuple[dict[str, Any], Send]], token: uuid.UUID) -> None:
        """Every claimed row through the send gate concurrently; outcomes recorded as they come back, in
        groups (RECORD_GROUP outcomes, or what came within RECORD_GROUP_WAIT_S of the group's first)."""
        finished: list[Outcome] = []
        wake = asyncio.Event()  # set by a group's first outcome and by the one that fills it
        unsettled = len(sends)  # rows still this batch's: freed for the next claim as they are recorded

        async def one(row: dict[str, Any], send: Send) -> None:
            outcome = await self._through_gate(row, send, token)
            if outcome is not None:
                finished.append(outcome)
                if len(finished) == 1 or len(finished) >= RECORD_GROUP:
                    wake.set()

        calls = asyncio.gather(*(one(row, send) for row, send in sends))
        ids = [row["id"] for row, _ in sends]
        renewing = asyncio.create_task(self._renew_lease(ids, token), name="claim-lease")
        try:
            while True:
                if not finished and not calls.done():
                    await _first(calls, wake)
                if finished and len(finished) < RECORD_GROUP and not calls.done():
                    wake.clear()
                    await _first(calls, wake, timeout=RECORD_GROUP_WAIT_S)
                wake.clear()
                if finished:
                    group = finished[:]
                    finished.clear()
                    try:
                        if self.after_send_hook is not None:
                            await self.after_send_hook(group)
                        await self.outcomes.record(group, token)
                    finally:
                        self._in_flight -= sum(1 for o in group if o.held is None)
                    unsettled -= len(group)
                    self._free(len(group))
                elif calls.done():
                    break
            calls.result()
        finally:
            renewing.cancel()
            if not calls.done():  # recording failed, or we are cancelled: no call may outlive its batch
                calls.cancel()
            await asyncio.gather(calls, renewing, return_exceptions=True)
            self._in_flight -= sum(1 for o in finished if o.held is None)  # never recorded: `sending` stays
            try:
                await self._release(ids, token)
            finally:
                self._free(unsettled)

    async def _through_gate(self, row: dict[str, Any], send: Send, token: uuid.UUID) -> Outcome | None:
        """The provider's outcome; None when the row was not sent by this batch (stopping, or no longer its
        claim) - it is then released back to `pending`, or already someone else's."""
        if self._stopping:
            return None
        async with self.gate.tenant_slot(send.provider, row["tenant_id"]), self.gate.slot(send.provider):
            if self._stopping:
                return None
            # Checked again at the send: a queue or a slow provider can carry a row past its window's end.
            step = row["step"]
            if step.get("deliver_until") or step.get("deliver_from"):  # no window, nothing to read the clock for
                outside = outside_window(step, self.clock.now(), send.zone)
                if outside is not None:
                    return Outcome(row, send, held=outside)
            try:
                admitted = await self.gate.admit(row["id"], token)
            except Exception as exc:
                log.warning("send gate: delivery %s not admitted (%s); it stays claimed", row["id"], exc)
                return None
            if not admitted:
                LOST_CLAIMS.inc()
                return None
            self._in_flight += 1
            try:
                return await self._attempt(row, send)
            except BaseException:  # cancelled mid-call: no outcome will be recorded for it
                self._in_flight -= 1
                raise

    async def _renew_lease(self, ids: list[uuid.UUID], token: uuid.UUID) -> None:
        """Keep this batch's claims while it works (a slow provider may take longer than one lease)."""
        while True:
            await asyncio.sleep(self.claim_lease_seconds / 3)
            try:
                async with self.sessions() as session, session.begin():
                    await claims.renew_lease(session, ids, token, self.claim_lease_seconds)
            except Exception as exc:  # a lost lease costs a re-render elsewhere, never a second send
                log.warning("renewing claim lease %s failed: %s", token, exc)

    async def _release(self, ids: list[uuid.UUID], token: uuid.UUID) -> None:
        try:
            async with self.sessions() as session, session.begin():
                released = await claims.release(session, ids, token)
        except Exception as exc:  # the lease expires instead, and another dispatcher takes them over
            log.warning("releasing claims %s failed: %s", token, exc)
            return
        if released:
            log.info("released %d claimed deliveries back to pending", released)

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
                row,
                send,
                error=OutcomeUnknownError(f"{send.provider}: unexpected {type(exc).__name__}: {exc}; outcome unknown"),
            )
        return Outcome(row, send, receipt=receipt)


async def _first(calls: asyncio.Future[Any], event: asyncio.Event, timeout: float | None = None) -> None:
    """Until the calls are done or the event is set (or the timeout passes)."""
    woken = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((calls, woken), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
