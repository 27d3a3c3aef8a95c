"""policy-engine settings (environment variables; see the README's settings table)."""

from pydantic import Field

from dunning_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    http_port: int = Field(8002, description="Port of the policy-engine API")
    stale_ledger_after_hours: float = Field(
        26.0,
        description="A tenant whose scheduled connector's last successful sync is older than this gets no dunning "
        "step (file imports and API pushes are never stale unless the tenant declares an import cadence)",
    )
    recall_window_hours: float = Field(
        72.0, description="A step sent this recently is recalled (dunning.step.cancelled) when its invoice settles"
    )
    step_timer_workers: int = Field(
        2, description="Timer loops per replica deciding due steps concurrently (they claim disjoint customers)"
    )
    consumer_fetch_wait_ms: int = Field(
        25,
        description="Longest the consumers wait on the broker for more events: bounds how long a payment can sit "
        "unread (payment -> cancellation latency)",
    )
    preview_max_cases: int = Field(20000, description="Most open cases one preview call simulates")

    def optional_secrets(self) -> set[str]:
        return {"self_service_signing_key"}  # the policy engine signs and reads no customer links
