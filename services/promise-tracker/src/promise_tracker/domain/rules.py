"""The promise rules a tenant configures: how far ahead a promise may reach, grace, and plan behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OnMissed = Literal["cancel", "strike"]


@dataclass(frozen=True)
class PromiseRules:
    max_horizon_days: int = 30
    grace_days: int = 0
    # What a missed plan instalment does: cancel the plan (plan.defaulted) or count a strike and go on.
    plan_on_missed: OnMissed = "cancel"
    # With "strike": how many missed instalments a plan survives; the next miss defaults it.
    plan_max_strikes: int = 1
    plan_max_instalments: int = 12
