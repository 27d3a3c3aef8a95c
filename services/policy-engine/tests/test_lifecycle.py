"""The default policy end to end on the real broker and PostgreSQL: every step at its local moment."""

from __future__ import annotations

from datetime import timedelta

from .conftest import EngineHarness, customer, invoice


async def test_smoke_pre_due_and_due_date_notice(engine: EngineHarness) -> None:
    await engine.publish(customer("C-1"), invoice("INV-1", due=engine.today + timedelta(days=10)))
    await engine.quiet()
    print(await engine.timeline("INV-1"))
    await engine.advance(days=11)
    print(await engine.timeline("INV-1"))
    steps = await engine.steps_due()
    print(steps)
    assert [s.step_name for s in steps] == ["due_date_notice"]
