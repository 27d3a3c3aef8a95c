"""The notifier handler tables are the index of what it reacts to: every key is a published event type on a topic one
of the consumers running that table subscribes to (a key on another topic would never be called)."""

from __future__ import annotations

from dunning_kit.testing import assert_tables_cover_their_topics
from notifier.service_layer.projections import LEDGER_HANDLERS
from notifier.service_layer.steps import STEP_HANDLERS


async def test_every_key_of_the_handler_tables_is_a_known_event_on_a_topic_its_consumers_read() -> None:
    await assert_tables_cover_their_topics("notifier", LEDGER_HANDLERS, STEP_HANDLERS)


def test_due_steps_are_recorded_set_wise_and_cancels_and_replans_one_by_one() -> None:
    setwise = {cls.__name__: reaction.setwise for cls, reaction in STEP_HANDLERS.items()}
    assert setwise == {"DunningStepDue": True, "DunningStepCancelled": False, "DunningStepReplanned": False}
