"""A loop that fires due durable timers: claim a batch, apply it, repeat; wait on the clock when idle.

The timers themselves live in the service's tables (a due-at column with an index); the service's
`fire_due` claims them with FOR UPDATE SKIP LOCKED so any number of replicas share the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from prometheus_client import Gauge

from dunning_events.consumer import is_transient
from dunning_kit.clock import Clock

log = logging.getLogger("dunning.timers")

TIMER_BACKLOG = Gauge("dunning_timers_due", "Durable timers due now and not yet fired", ["timer"])
TIMER_OLDEST_OVERDUE = Gauge(
    "dunning_timers_oldest_overdue_seconds", "How long the oldest due timer has waited", ["timer"]
)

FireDue = Callable[[datetime], Awaitable[int]]
DueStats = Callable[[datetime], Awaitable[tuple[int, float]]]


class TimerLoop:
    def __init__(
        self, name: str, clock: Clock, fire_due: FireDue, due_stats: DueStats, poll_interval: float = 1.0
    ) -> None:
        self.name = name
        self.clock = clock
        self.fire_due = fire_due
        self.due_stats = due_stats
        self.poll_interval = poll_interval
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._idle = False  # waiting in clock.tick, no batch in hand

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"timers-{self.name}")

    async def stop(self) -> None:
        # Let the batch in hand finish (its transaction commits or rolls back whole), then stop. A loop waiting
        # for time to pass holds no batch: it stops at once, not after its poll interval.
        self._stopping = True
        if self._task is not None and self._idle:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=self.poll_interval + 10)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                fired = await self.fire_due(self.clock.now())
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = logging.WARNING if is_transient(exc) else logging.ERROR
                log.log(
                    level,
                    "timer loop %s: %s; retrying in %.1fs",
                    self.name,
                    exc,
                    backoff,
                    exc_info=not is_transient(exc),
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if fired == 0:
                self._idle = True
                try:
                    await self.clock.tick(self.poll_interval)
                finally:
                    self._idle = False

    async def due_now(self) -> int:
        count, oldest = await self.due_stats(self.clock.now())
        TIMER_BACKLOG.labels(timer=self.name).set(count)
        TIMER_OLDEST_OVERDUE.labels(timer=self.name).set(oldest)
        return count
