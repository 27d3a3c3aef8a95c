"""The promise-tracker handler tables are the index of what it reacts to: every key is a published event type on a topic one
of the consumers running that table subscribes to (a key on another topic would never be called)."""

from __future__ import annotations

from dunning_kit.testing import assert_tables_cover_their_topics
from promise_tracker.service_layer.matching import HANDLERS


async def test_every_key_of_the_handler_tables_is_a_known_event_on_a_topic_its_consumers_read() -> None:
    await assert_tables_cover_their_topics("promise-tracker", HANDLERS)
