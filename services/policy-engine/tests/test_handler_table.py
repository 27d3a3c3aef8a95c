"""The policy-engine handler tables are the index of what it reacts to: every key is a published event type on a topic one
of the consumers running that table subscribes to (a key on another topic would never be called)."""

from __future__ import annotations

from dunning_kit.testing import assert_tables_cover_their_topics
from policy_engine.service_layer.handlers import HANDLERS


async def test_every_key_of_the_handler_tables_is_a_known_event_on_a_topic_its_consumers_read() -> None:
    await assert_tables_cover_their_topics("policy-engine", HANDLERS)


def test_customers_and_invoices_are_applied_set_wise_from_the_same_table() -> None:
    # The bulk forms are entries of the one table (no second table shadows it).
    setwise = {cls.__name__ for cls, reaction in HANDLERS.items() if reaction.setwise}
    assert setwise == {"CustomerUpserted", "InvoiceCreated"}
