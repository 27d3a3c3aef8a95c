"""The runtime's hooks a service wires instead of patching the runtime: `add_timer(..., workers=n)` runs n loops
side by side, `on_stop` callbacks run before the parts stop (while timers still run) or after them, and the service's
own objects sit in a typed slot that says when a bootstrap forgot to fill it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import MetaData

from dunning_kit.clock import SystemClock
from dunning_kit.runtime import ServiceRuntime, plumbing_tables
from dunning_kit.settings import ServiceSettings
from dunning_kit.testing import poll_until


@dataclass(frozen=True)
class ShopObjects:
    greeting: str


def _runtime(database_url: str) -> ServiceRuntime[ServiceSettings, ShopObjects]:
    metadata = MetaData()
    plumbing_tables(metadata)
    settings = ServiceSettings(
        dev_mode=True, database_url=database_url, kafka_bootstrap_servers="127.0.0.1:1", timer_poll_interval=0.05
    )
    return ServiceRuntime(
        name="hooks-test", settings=settings, clock=SystemClock(), metadata=metadata, schema="hooks_test"
    )


async def test_timer_workers_run_side_by_side_and_stop_callbacks_run_before_and_after_the_parts(
    database_url: str,
) -> None:
    runtime = _runtime(database_url)
    fired_by: set[str] = set()

    async def fire(now: datetime) -> int:
        fired_by.add(asyncio.current_task().get_name())  # type: ignore[union-attr]
        await asyncio.sleep(0.01)  # the batch's own work (not a wait for async work): the workers' batches overlap
        return 0

    async def stats(now: datetime) -> tuple[int, float]:
        return 0, 0.0

    loops = runtime.add_timer("deliveries", fire, stats, workers=3)
    assert [t.name for t in loops] == ["deliveries", "deliveries-1", "deliveries-2"] == [t.name for t in runtime.timers]

    stages: list[tuple[str, bool]] = []

    def timers_running() -> bool:
        return all(t._task is not None and not t._task.done() for t in runtime.timers)

    async def finish_work() -> None:
        stages.append(("before the parts", timers_running()))

    async def close_clients() -> None:
        stages.append(("after the parts", timers_running()))

    runtime.on_stop(close_clients)
    runtime.on_stop(finish_work, before_parts=True)
    await runtime.start()  # the broker is unreachable: the timers start all the same, once the database answers
    try:

        async def all_three_fired() -> bool:
            return fired_by == {"timers-deliveries", "timers-deliveries-1", "timers-deliveries-2"}

        await poll_until(all_three_fired, what="all three timer workers fired")
    finally:
        await runtime.stop()
    assert stages == [("before the parts", True), ("after the parts", False)]


async def test_the_services_objects_are_typed_and_missing_ones_are_named(
    database_url: str,
) -> None:
    runtime = _runtime(database_url)
    try:
        with pytest.raises(RuntimeError, match="hooks-test: the service's objects were not set"):
            _ = runtime.objects
        runtime.objects = ShopObjects(greeting="hello")
        assert runtime.objects.greeting == "hello"
    finally:
        await runtime.producer.stop()
        await runtime.engine.dispose()
