"""promise-tracker settings (environment variables; see the README's settings table)."""

from typing import Literal

from pydantic import Field

from dunning_kit.settings import ServiceSettings
from promise_tracker.domain.rules import PromiseRules


class Settings(ServiceSettings):
    http_port: int = Field(8004, description="Port of the promise-tracker API and self-service pages")
    promise_max_horizon_days: int = Field(
        30, ge=0, description="Default for tenants without rules: furthest a promised date may lie ahead (days)"
    )
    promise_grace_days: int = Field(0, ge=0, description="Default grace days after the promised day")
    plan_on_missed: Literal["cancel", "strike"] = Field(
        "cancel", description="Default: a missed instalment defaults the plan (cancel) or counts a strike"
    )
    plan_max_strikes: int = Field(1, ge=0, description="Default: missed instalments a plan survives in strike mode")
    plan_max_instalments: int = Field(12, ge=1, description="Default: most instalments one plan may have")
    promise_deadline_settle_seconds: float = Field(
        120.0,
        ge=0,
        description=(
            "Seconds after a deadline before it is judged, so a payment made in time but still on its way "
            "from the ERP is counted (the deadline itself does not move)"
        ),
    )
    promise_deadline_workers: int = Field(
        2, ge=1, le=16, description="Deadline batches claimed concurrently per replica (FOR UPDATE SKIP LOCKED)"
    )
    self_service_plan_interval: Literal["weekly", "fortnightly", "monthly"] = Field(
        "monthly", description="Instalment interval of plans customers request on the self-service page"
    )

    def default_rules(self) -> PromiseRules:
        return PromiseRules(
            max_horizon_days=self.promise_max_horizon_days,
            grace_days=self.promise_grace_days,
            plan_on_missed=self.plan_on_missed,
            plan_max_strikes=self.plan_max_strikes,
            plan_max_instalments=self.plan_max_instalments,
        )
