"""When to try a failed send again: exponential backoff with jitter, bounded (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifier.domain.messages import SendError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 60.0
    max_seconds: float = 3600.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Delay after the `attempt`-th failed attempt: half fixed, half random ("equal jitter"), so
        replicas that failed together do not retry together, yet a retry never comes almost at once."""
        exp = min(self.max_seconds, self.base_seconds * (2 ** max(0, attempt - 1)))
        return exp / 2 + rng.uniform(0, exp / 2)


@dataclass(frozen=True)
class RetryAt:
    at: datetime


@dataclass(frozen=True)
class GiveUp:
    reason: str
    permanent: bool


def after_failure(
    policy: RetryPolicy, attempts: int, error: SendError, now: datetime, rng: random.Random
) -> RetryAt | GiveUp:
    """`attempts` counts the attempt that just failed."""
    if error.permanent:
        return GiveUp(error.reason, permanent=True)
    if attempts >= policy.max_attempts:
        return GiveUp(f"{error.reason} (gave up after {attempts} attempts)", permanent=False)
    delay = policy.delay(attempts, rng)
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)  # a provider's Retry-After is a floor, not a suggestion
    return RetryAt(now + timedelta(seconds=delay))
