"""The collector's worklist (real PostgreSQL and broker, simulated clock): tasks are assigned, snoozed until a date
(hidden from the open list until then) and completed with an outcome, each change emitting its dunning.task.* event
for the policy engine's timeline; a retried completion emits nothing again, and bad input changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dunning_events.events import DunningTaskAssigned, DunningTaskCompleted, DunningTaskSnoozed
from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import RunningService
from notifier.testing import EventFeed, TopicReader


async def test_tasks_are_assigned_snoozed_and_completed_with_an_outcome_and_each_change_is_an_event(
    notifier: RunningService, feed: EventFeed, notifications: TopicReader, clock: SimulatedClock
) -> None:
    await feed.publish(feed.customer(), feed.invoice())
    for step_id in ("S-1", "S-2"):
        await feed.publish(feed.step(step_id, channels=["task"], template_id="collections_hand_off", tone="final"))
    await notifications.wait_for("notification.sent", 2)

    async with notifier.client() as api:

        async def ids(**params: Any) -> list[str]:
            r = await api.get("/v1/tasks", params=params)
            assert r.status_code == 200, r.text
            return sorted(t["step_id"] for t in r.json()["items"])  # made at one instant: in any order

        first, second = sorted((await api.get("/v1/tasks")).json()["items"], key=lambda t: t["step_id"])
        colin = {"sub": "colin", "name": "Colin Collector"}
        assigned = await api.post(f"/v1/tasks/{first['id']}/assign", json={"assignee": colin})
        assert assigned.status_code == 200, assigned.text
        assert (assigned.json()["assignee_sub"], assigned.json()["assignee_name"]) == ("colin", "Colin Collector")
        assert await ids(assignee="colin") == ["S-1"] and await ids(assignee="mona") == []

        # Snoozed: hidden from the open list until its date, shown on request, back once the date has come.
        until = clock.now() + timedelta(days=2)
        snoozed = await api.post(f"/v1/tasks/{second['id']}/snooze", json={"until": until.isoformat()})
        assert snoozed.status_code == 200 and snoozed.json()["snoozed_until"] == until.isoformat()
        assert await ids() == ["S-1"]
        assert await ids(include_snoozed="true") == ["S-1", "S-2"]
        past = await api.post(f"/v1/tasks/{second['id']}/snooze", json={"until": clock.now().isoformat()})
        assert past.status_code == 422 and past.json()["errors"][0]["field"] == "until"
        clock.advance(timedelta(days=2))
        assert await ids() == ["S-1", "S-2"]

        done = await api.post(f"/v1/tasks/{first['id']}/complete",
                              json={"outcome": "promise_made", "note": "pays Friday"})  # fmt: skip
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["outcome"], done.json()["note"]) == ("done", "promise_made",
                                                                                         "pays Friday")  # fmt: skip
        retried = await api.post(f"/v1/tasks/{first['id']}/complete", json={"outcome": "promise_made"})
        assert retried.status_code == 200 and retried.json() == done.json()  # nothing changed
        assert (await api.post(f"/v1/tasks/{first['id']}/assign", json={"assignee": None})).status_code == 409
        assert (await api.post(f"/v1/tasks/{second['id']}/complete", json={})).json()["outcome"] == "done"
        assert await ids() == [] and await ids(status="done") == ["S-1", "S-2"]
        for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
            assert (await api.post(f"/v1/tasks/{bad}/complete", json={})).status_code == 404
        wrong = await api.post(f"/v1/tasks/{second['id']}/complete", json={"outcome": "shouted"})
        assert wrong.status_code == 422

    [assign] = await notifications.wait_for("dunning.task.assigned")
    [snooze] = await notifications.wait_for("dunning.task.snoozed")
    completed = await notifications.wait_for("dunning.task.completed", 2)
    assert assign.data == DunningTaskAssigned(
        customer_id="C-1", task_id=first["id"], step_id="S-1", invoice_ids=["INV-1"], by=None, assignee_sub="colin",
        assignee_name="Colin Collector",
    )  # fmt: skip
    assert snooze.data == DunningTaskSnoozed(customer_id="C-1", task_id=second["id"], step_id="S-2",
                                             invoice_ids=["INV-1"], until=until)  # fmt: skip
    assert completed[0].data == DunningTaskCompleted(customer_id="C-1", task_id=first["id"], step_id="S-1",
                                                     invoice_ids=["INV-1"], outcome="promise_made", note="pays Friday")  # fmt: skip
    assert completed[0].subject == first["id"] and completed[1].data.outcome == "done"  # the old body: outcome done
    # One customer's events share a partition, in outbox order: had the retried completion emitted, it would be the
    # second completed event (promise_made), before the old-body one (done).
    assert len(notifications.of_type("dunning.task.completed")) == 2
    assert len(notifications.of_type("dunning.task.assigned")) == 1
