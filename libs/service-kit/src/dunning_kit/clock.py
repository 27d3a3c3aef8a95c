"""The injected clock: system time in production, a shared simulated clock in tests and simulations."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
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


class FileClock:
    """Simulated time shared by separate processes: the instant is the ISO text of a file.

    For simulations and fault-injection tests that run each service as its own process (CLOCK_FILE);
    `advance_file_clock` moves it. Never used in production.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._mtime = -1.0
        self._now = datetime.now(UTC)
        self._read()

    def _read(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            self._now = datetime.fromisoformat(self.path.read_text().strip()).astimezone(UTC)
            self._mtime = mtime

    def now(self) -> datetime:
        self._read()
        return self._now

    async def tick(self, max_wait: float) -> None:
        before = self.now()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        # Another process moves the file, so there is no in-process event to wait on: poll it.
        while loop.time() < deadline and self.now() == before:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def set_file_clock(path: str | os.PathLike[str], instant: datetime) -> None:
    """Write the shared simulated time atomically (readers never see half a timestamp)."""
    target = Path(path)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(instant.astimezone(UTC).isoformat())
    os.replace(tmp, target)


def clock_from_settings(clock_file: str | os.PathLike[str] | None) -> Clock:
    return FileClock(clock_file) if clock_file else SystemClock()
