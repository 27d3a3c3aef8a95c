"""insights runs as the fifth service: it starts through its composition root on real PostgreSQL and the real
broker, becomes ready and quiet, has every read-model table migrated, publishes nothing, answers errors as
problems, and documents every operation with typed schemas."""

from __future__ import annotations

from sqlalchemy import text

from dunning_kit.openapi_check import unserved_app, untyped_operations
from dunning_kit.testing import RunningService, assert_problem
from insights.adapters import orm


async def test_it_starts_ready_and_quiet_with_the_read_model_migrated(insights_module: RunningService) -> None:
    async with insights_module.client(key=None) as anonymous:
        for probe in ("/healthz", "/readyz", "/quietz"):
            r = await anonymous.get(probe)
            assert r.status_code == 200, (probe, r.text)
    async with insights_module.runtime.engine.connect() as conn:
        tables = set(
            (
                await conn.execute(
                    text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"),
                    {"schema": orm.SCHEMA},
                )
            ).scalars()
        )
    assert {t.name for t in orm.metadata.sorted_tables} <= tables


async def test_the_read_model_publishes_nothing(insights_module: RunningService) -> None:
    # It is the reference consumer: no topic is its to write (its Kafka user gets no Write on any event topic).
    assert insights_module.runtime.produces == ()


async def test_an_unknown_path_is_a_problem_and_metrics_are_served(insights_module: RunningService) -> None:
    async with insights_module.client() as api:
        assert_problem(await api.get("/v1/no-such-thing"), 404)
        metrics = await api.get("/metrics")
    assert metrics.status_code == 200 and "dunning_" in metrics.text


async def test_every_operation_declares_its_request_and_response_schemas() -> None:
    assert untyped_operations(await unserved_app("insights")) == []
