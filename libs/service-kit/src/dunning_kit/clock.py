"""The injected clock: system time in production, a shared simulated clock in tests and simulations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current instant, timezone-aware UTC."""
        ...

    async def tick(self, max_wait: float) -> None:
        """Wait until the time may have moved enough to matter: at most `max_wait` wall seconds."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def tick(self, max_wait: float) -> None:
        await asyncio.sleep(max_wait)


class SimulatedClock:
    """Time that moves only when a test advances it; every service in the process shares one.

    Waiters in `tick` wake as soon as the clock is advanced, so a scheduler reacts at once.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        instant = instant.astimezone(UTC)
        if instant < self._now:
            raise ValueError("the simulated clock never goes backwards")
        self._now = instant
        self._changed.set()
        self._changed = asyncio.Event()

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.set(self._now + (delta if delta is not None else timedelta(**kwargs)))
        return self._now

    async def tick(self, max_wait: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=max_wait)
        except TimeoutError:
            pass
