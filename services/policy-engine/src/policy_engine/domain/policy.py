"""Dunning policies, free of I/O. The walking skeleton knows one built-in step: the due-date notice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Step:
    index: int
    name: str
    offset_days: int
    tone: str
    template_id: str
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    policy_id: str
    version: int
    send_at: time
    steps: tuple[Step, ...]


DEFAULT_POLICY = Policy(
    policy_id="default",
    version=1,
    send_at=time(10, 0),
    steps=(Step(0, "due_date_notice", 0, "neutral", "due_date_notice", ("email",)),),
)


def step_due_at(policy: Policy, step: Step, due_date: date, time_zone: str) -> datetime:
    """The instant a step fires: its day relative to the due date, at the policy's send time, local."""
    from datetime import timedelta

    day = due_date + timedelta(days=step.offset_days)
    return datetime.combine(day, policy.send_at, tzinfo=ZoneInfo(time_zone))
