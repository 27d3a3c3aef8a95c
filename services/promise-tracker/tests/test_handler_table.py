"""The promise-tracker handler tables are the index of what it reacts to: every key is a published event type on a topic one
of the consumers running that table subscribes to (a key on another topic would never be called)."""

from __future__ import annotations

from dunning_events.handler_table import table_problems, tables_read_by
from dunning_kit.clock import SystemClock
from promise_tracker.bootstrap import build_runtime
from promise_tracker.service_layer.matching import HANDLERS
from promise_tracker.settings import Settings


async def test_every_key_of_the_handler_tables_is_a_known_event_on_a_topic_its_consumers_read() -> None:
    runtime = build_runtime(
        Settings(
            dev_mode=True,
            database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
            kafka_bootstrap_servers="127.0.0.1:1",
        ),
        SystemClock(),
    )
    try:
        read = tables_read_by(runtime.consumers)
        assert {id(table) for table, _ in read} == {id(t) for t in (HANDLERS,)}
        for table, topics in read:
            assert table_problems(table, topics) == [], sorted(topics)
    finally:
        await runtime.producer.stop()
        await runtime.engine.dispose()
