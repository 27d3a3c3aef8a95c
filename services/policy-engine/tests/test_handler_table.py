"""The policy-engine handler tables are the index of what it reacts to: every key is a published event type on a topic one
of the consumers running that table subscribes to (a key on another topic would never be called)."""

from __future__ import annotations

from dunning_events.handler_table import table_problems, tables_read_by
from dunning_kit.clock import SystemClock
from policy_engine.bootstrap import build_runtime
from policy_engine.service_layer.handlers import HANDLERS
from policy_engine.settings import Settings


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


def test_customers_and_invoices_are_applied_set_wise_from_the_same_table() -> None:
    # The bulk forms are entries of the one table (no second table shadows it).
    setwise = {cls.__name__ for cls, reaction in HANDLERS.items() if reaction.setwise}
    assert setwise == {"CustomerUpserted", "InvoiceCreated"}
