"""KAFKA_SESSION_TIMEOUT_MS reaches every consumer group a service wires (the tests run on 2 s, production on 10 s)."""

from __future__ import annotations

from dunning_kit.clock import SystemClock
from dunning_kit.services import SERVICES, ServiceSpec


async def _session_timeouts(spec: ServiceSpec, **settings: object) -> dict[str, int]:
    module = spec.bootstrap()
    offline = {"dev_mode": True} if "dev_mode" in module.Settings.model_fields else {}
    runtime = module.build_runtime(
        module.Settings(
            database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
            kafka_bootstrap_servers="127.0.0.1:1",
            **offline,
            **settings,
        ),
        SystemClock(),
    )
    try:
        return {c.group: c.session_timeout_ms for c in runtime.consumers}
    finally:
        await runtime.producer.stop()
        await runtime.engine.dispose()


async def test_every_consumer_group_of_every_service_uses_the_configured_session_timeout() -> None:
    default = {f"{spec.name}/{g}": t for spec in SERVICES for g, t in (await _session_timeouts(spec)).items()}
    assert len(default) >= 3 and set(default.values()) == {10_000}, default
    configured = {
        f"{spec.name}/{g}": t
        for spec in SERVICES
        for g, t in (await _session_timeouts(spec, kafka_session_timeout_ms=2_000)).items()
    }
    assert configured.keys() == default.keys() and set(configured.values()) == {2_000}, configured
