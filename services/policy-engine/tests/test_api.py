"""The API: policies with versions, assignments, tenant isolation, the preview dry run."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from importlib import resources
from typing import Any

from dunning_events.consumer import ConsumedEvent
from dunning_kit.clock import SimulatedClock
from dunning_kit.problems import NOT_ARRIVED_YET, PROBLEM_JSON
from dunning_kit.testing import BrokerBackend, poll_until, wait_for_assignment

from .conftest import EngineHarness, customer, invoice, start_engine

DEFAULT_POLICY_TEXT = resources.files("policy_engine.domain").joinpath("default_policy.yaml").read_text()

POLICY_YAML = """
id: smb
name: Small business
steps:
  - {name: nudge, offset_days: 1, channels: [email], template_id: nudge, tone: gentle}
  - {name: push, offset_days: 10, channels: [email], template_id: push, tone: firm}
  - {name: last, offset_days: 20, channels: [letter], template_id: last, tone: final}
"""


def step(name: str, offset: int, tone: str = "gentle") -> dict[str, Any]:
    return {"name": name, "offset_days": offset, "channels": ["email"], "template_id": name, "tone": tone}


async def test_every_route_needs_a_key_policies_need_an_admin_key_and_tenants_are_isolated(
    engine: EngineHarness,
) -> None:
    await engine.publish(customer(), invoice("INV-1", due=engine.today + timedelta(days=10)))
    await engine.quiet()
    routes = [
        ("GET", "/v1/policies"), ("POST", "/v1/policies"), ("PUT", "/v1/policies/x"), ("DELETE", "/v1/policies/x"),
        ("GET", "/v1/assignments"), ("PUT", "/v1/assignments/customers/C-1"), ("GET", "/v1/preview"),
        ("GET", "/v1/invoices/INV-1/timeline"), ("GET", "/v1/customers/C-1/timeline"),
        ("PUT", "/v1/invoices/INV-1/dunning-block"), ("DELETE", "/v1/customers/C-1/dunning-block"),
    ]  # fmt: skip
    async with engine.api(None) as anon, engine.api() as api, engine.api("globex-api-key") as globex:
        for method, path in routes:
            assert (await anon.request(method, path)).status_code == 401, path
        for method, path in routes[:6]:
            assert (await api.request(method, path)).status_code == 403, path
        assert (await api.get("/v1/invoices/INV-1/timeline")).status_code == 200
        for method, path in routes[7:]:
            assert (await globex.request(method, path)).status_code == 404, path
    async with engine.api("globex-admin-key") as globex_admin:
        assert (await globex_admin.put("/v1/assignments/customers/C-1", json={"policy_id": "nope"})).status_code == 422


async def test_policy_crud_with_versions_in_yaml_and_json(engine: EngineHarness) -> None:
    async with engine.api("acme-admin-key") as admin:
        r = await admin.post("/v1/policies", content=POLICY_YAML, headers={"content-type": "application/yaml"})
        assert r.status_code == 201, r.text
        assert (r.json()["id"], r.json()["version"]) == ("smb", 1)
        assert (
            await admin.post("/v1/policies", content=POLICY_YAML, headers={"content-type": "application/yaml"})
        ).status_code == 409

        v2 = {**r.json(), "steps": [step("nudge", 2), step("push", 12, "firm")]}
        del v2["version"], v2["open_cases_replanned"]
        r = await admin.put("/v1/policies/smb", json=v2)
        assert (r.status_code, r.json()["version"]) == (200, 2)
        versions = (await admin.get("/v1/policies/smb/versions")).json()["items"]
        assert [v["version"] for v in versions] == [1, 2]
        assert (await admin.get("/v1/policies/smb/versions/1")).json()["document"]["steps"][0]["offset_days"] == 1
        assert (await admin.get("/v1/policies/smb")).json()["version"] == 2
        assert {p["id"] for p in (await admin.get("/v1/policies")).json()["items"]} == {"smb", "default"}

        assert (await admin.delete("/v1/policies/smb")).status_code == 200
        assert (await admin.get("/v1/policies/smb")).status_code == 404
        assert (await admin.delete("/v1/policies/default")).status_code == 409
        r = await admin.put("/v1/policies/default", json={"steps": [step("only", 3)]})
        assert (r.status_code, r.json()["version"]) == (200, 2)  # the built-in default is version 1


async def test_an_invalid_policy_is_rejected_whole_with_every_error_listed(engine: EngineHarness) -> None:
    bad = {"id": "bad", "priority": "high", "steps": [step("a", 1), step("b", 2), step("c", 3), step("d", "x")],
           "quiet_hours": {"end": "22:00"}}  # fmt: skip
    async with engine.api("acme-admin-key") as admin:
        r = await admin.post("/v1/policies", json=bad)
        assert r.status_code == 422
        body = r.json()
        assert [f"{e['field']}: {e['reason']}" for e in body["errors"]] == [
            "priority: must be an integer",
            "quiet_hours.end: must not be after 21:00 (a policy may only be stricter)",
            "steps[3].offset_days: must be an integer",
        ]
        assert body["errors"][2] == {"field": "steps[3].offset_days", "reason": "must be an integer"}
        assert (await admin.get("/v1/policies/bad")).status_code == 404  # nothing stored
        r = await admin.post("/v1/policies", content="id: [", headers={"content-type": "application/yaml"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "(policy)"
        r = await admin.post("/v1/policies/validate", content=POLICY_YAML, headers={"content-type": "application/yaml"})
        assert r.json()["valid"] is True and (await admin.get("/v1/policies/smb")).status_code == 404


async def test_a_new_version_applies_to_open_cases_from_their_next_step_never_resending(engine: EngineHarness) -> None:
    async with engine.api("acme-admin-key") as admin:
        assert (
            await admin.post("/v1/policies", json={"id": "p", "steps": [step("a", -1), step("b", 5), step("c", 9)]})
        ).status_code == 201
        assert (await admin.put("/v1/assignments/customers/C-1", json={"policy_id": "p"})).status_code == 200
    await engine.publish(customer(), invoice("INV-1", due=engine.today + timedelta(days=1)))
    await engine.quiet()  # step a (day -1) goes out now under v1
    async with engine.api("acme-admin-key") as admin:
        r = await admin.put("/v1/policies/p", json={"steps": [step("a", -1), step("a2", 0), step("c", 9, "firm")]})
        assert r.json()["open_cases_replanned"] == 1
    await engine.run_until_idle("INV-1")

    got = [(s.step_name, s.policy_version) for s in await engine.steps_due()]
    assert got == [("a", 1), ("a2", 2), ("c", 2)]  # a is never sent again; b no longer exists
    scheduled = [
        (e["step"], e["detail"]["policy_version"]) for e in await engine.timeline("INV-1") if e["kind"] == "scheduled"
    ]
    assert scheduled == [("a", 1), ("b", 1), ("a2", 2), ("c", 2)]


async def test_assigning_a_policy_to_a_segment_moves_its_customers_open_cases(engine: EngineHarness) -> None:
    await engine.publish(customer("C-1", segment="smb"), customer("C-2", segment="enterprise"))
    await engine.publish(invoice("A", "C-1", due=engine.today + timedelta(days=20)),
                         invoice("B", "C-2", due=engine.today + timedelta(days=20)))  # fmt: skip
    await engine.quiet()
    async with engine.api("acme-admin-key") as admin:
        await admin.post("/v1/policies", content=POLICY_YAML, headers={"content-type": "application/yaml"})
        r = await admin.put("/v1/assignments/segments/smb", json={"policy_id": "smb"})
        assert r.json()["open_cases_replanned"] == 1
        assert (await admin.get("/v1/assignments")).json()["items"][0]["target"] == "smb"
    await engine.quiet()
    a, b = await engine.state("A"), await engine.state("B")
    assert (a["policy_id"], a["next_step"]) == ("smb", "nudge")
    assert (b["policy_id"], b["next_step"]) == ("default", "pre_due_reminder")


async def test_the_preview_lists_what_would_go_out_per_customer_channel_and_amount_without_sending(
    engine: EngineHarness,
) -> None:
    due = engine.today + timedelta(days=6)
    await engine.publish(
        customer("C-1"), customer("C-2"),
        invoice("A", "C-1", due=due, amount="100.00"), invoice("B", "C-1", due=due, amount="50.00"),
        invoice("C", "C-2", due=due + timedelta(days=30), amount="70.00"),
    )  # fmt: skip
    await engine.quiet()
    before = [e.id for e in await engine.events()]
    timeline_before = await engine.timeline("A")
    start, end = engine.clock.now(), engine.clock.now() + timedelta(days=14)
    async with engine.api() as api:
        r = await api.get("/v1/preview", params={"from": start.isoformat(), "to": end.isoformat()})
        assert r.status_code == 200, r.text
        assert (
            await api.get("/v1/preview", params={"from": end.isoformat(), "to": start.isoformat()})
        ).status_code == 422
        assert (await api.get("/v1/preview", params={"from": "yesterday", "to": end.isoformat()})).status_code == 422
    body = r.json()
    got = [(s["customer_id"], s["step"], s["channels"], s["amount_due"]) for s in body["steps"]]
    assert got == [
        ("C-1", "pre_due_reminder", ["email"], "150.00"),
        ("C-1", "due_date_notice", ["email"], "150.00"),
        ("C-1", "follow_up_1", ["email"], "150.00"),
    ]
    assert body["totals"] == {"EUR": {"steps": 3, "amount_due": "450.00"}}
    assert [e.id for e in await engine.events()] == before
    assert await engine.timeline("A") == timeline_before


async def test_a_draft_is_previewed_as_publishing_it_would_act_and_nothing_is_stored(engine: EngineHarness) -> None:
    """The default policy's draft sends the due-date notice three days later and drops the first follow-up: the
    comparison shows the messages per day and channel before and after, and the customer whose steps change; the
    policy in force and the cases stay as they were."""
    due = engine.today + timedelta(days=6)
    await engine.publish(
        customer("C-1"), customer("C-2"),
        invoice("A", "C-1", due=due, amount="100.00"),
        invoice("C", "C-2", due=due + timedelta(days=60), amount="70.00"),
    )  # fmt: skip
    await engine.quiet()
    state_before = await engine.state("A")
    draft = DEFAULT_POLICY_TEXT.replace(
        "{name: due_date_notice, offset_days: 0,", "{name: due_date_notice, offset_days: 3,"
    ).replace(
        "  - {name: follow_up_1, offset_days: 3, channels: [email], template_id: gentle_follow_up, tone: gentle}\n", ""
    )
    window = {"from": engine.clock.now().isoformat(), "to": (engine.clock.now() + timedelta(days=14)).isoformat()}
    yaml_body = {"content-type": "application/yaml"}
    async with engine.api("acme-admin-key") as admin, engine.api() as api:
        r = await admin.post("/v1/policies/default/preview", params=window, content=draft, headers=yaml_body)
        assert r.status_code == 200, r.text
        refused = await api.post("/v1/policies/default/preview", params=window, content=draft, headers=yaml_body)
        broken = await admin.post(
            "/v1/policies/default/preview", params=window, content="id: default\nsteps: nope\n", headers=yaml_body
        )
        too_long = await admin.post(
            "/v1/policies/default/preview", content=draft, headers=yaml_body,
            params={**window, "to": (engine.clock.now() + timedelta(days=120)).isoformat()},
        )  # fmt: skip
        in_force = (await admin.get("/v1/policies/default")).json()
    assert refused.status_code == 403
    assert broken.status_code == 422 and any(e["field"].startswith("steps") for e in broken.json()["errors"])
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "to"
    body = r.json()
    assert body["draft_version"] == 2
    now_steps = [(s["customer_id"], s["step"], s["channels"]) for s in body["current"]["steps"]]
    draft_steps = [(s["customer_id"], s["step"], s["channels"]) for s in body["draft"]["steps"]]
    assert now_steps == [
        ("C-1", "pre_due_reminder", ["email"]), ("C-1", "due_date_notice", ["email"]),
        ("C-1", "follow_up_1", ["email"]),
    ]  # fmt: skip
    assert draft_steps == [("C-1", "pre_due_reminder", ["email"]), ("C-1", "due_date_notice", ["email"])]
    volume = {(v["day"], v["channel"]): (v["current"], v["draft"]) for v in body["per_day_and_channel"]}
    notice_now, notice_draft = (
        next(s["day"] for s in side["steps"] if s["step"] == "due_date_notice")
        for side in (body["current"], body["draft"])
    )
    assert notice_draft > notice_now
    pre_due, follow_up = (body["current"]["steps"][i]["day"] for i in (0, 2))
    assert notice_draft == follow_up  # the draft's notice goes out on the day the dropped follow-up would have
    assert volume == {(pre_due, "email"): (1, 1), (notice_now, "email"): (1, 0), (follow_up, "email"): (1, 1)}
    assert body["customers_changed"] == ["C-1"] and body["customers_added"] == body["customers_dropped"] == []
    assert in_force["version"] == 1 and in_force["steps"][1]["offset_days"] == 0
    assert await engine.state("A") == state_before


def hold_ledger_consumer(engine: EngineHarness, release: asyncio.Event) -> list[Any]:
    """Every replica's ledger consumer waits for `release` before applying a batch; returns the consumers."""
    held_consumers = []
    for svc in engine.services:
        ledger = next(c for c in svc.runtime.consumers if c.group == "policy-engine.ledger")

        def hold(apply: Any) -> Any:
            async def held(session: Any, events: list[ConsumedEvent]) -> None:
                await release.wait()
                await apply(session, events)

            return held

        ledger.handler = hold(ledger.handler)
        held_consumers.append(ledger)
    return held_consumers


async def test_a_read_of_an_invoice_not_yet_applied_says_it_has_not_arrived_and_an_unknown_one_says_unknown(
    engine: EngineHarness,
) -> None:
    # Hold the ledger consumer inside its batch (before its transaction commits): the events are on the broker,
    # not applied, exactly the moment right after a POST to ledger-sync.
    release = asyncio.Event()
    hold_ledger_consumer(engine, release)
    await engine.publish(customer(), invoice("INV-1", due=engine.today - timedelta(days=10)))
    async with engine.api() as api:
        for path, what in [("/v1/invoices/INV-1/timeline", "invoice INV-1"),
                           ("/v1/customers/C-1/timeline", "customer C-1"),
                           ("/v1/invoices/INV-1/dunning", "invoice INV-1")]:  # fmt: skip
            r = await api.get(path)
            assert r.status_code == 404, r.text
            assert r.headers["content-type"] == PROBLEM_JSON
            assert r.headers["retry-after"] == "1"
            body = r.json()
            assert (body["type"], body["title"], body["status"], body["instance"]) == (
                NOT_ARRIVED_YET, "Not arrived yet", 404, path,
            )  # fmt: skip
            assert body["detail"].startswith(f"{what} has not arrived yet: the policy-engine still has ")
            assert body["pending_events"] >= 1

        release.set()

        async def timeline() -> Any:
            r = await api.get("/v1/invoices/INV-1/timeline", params={"limit": 500})
            return r.json()["items"] if r.status_code == 200 else None

        assert await poll_until(timeline, what="the invoice's timeline once its event is applied")
        await engine.quiet()
        for path, what in [("/v1/invoices/INV-9/timeline", "invoice INV-9"),
                           ("/v1/customers/C-9/timeline", "customer C-9"),
                           ("/v1/invoices/INV-9/dunning", "invoice INV-9")]:  # fmt: skip
            r = await api.get(path)
            assert r.status_code == 404, r.text
            assert r.headers["content-type"] == PROBLEM_JSON and "retry-after" not in r.headers
            body = r.json()
            assert (body["type"], body["title"]) == ("about:blank", "Not Found")
            assert body["detail"] == (
                f"unknown {what}: the policy-engine has applied every event published so far and none was about it"
            )


async def test_a_replica_without_the_event_s_partition_still_says_not_arrived_yet(
    engine: EngineHarness, database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> None:
    engine.services.append(await start_engine(database_url, broker, clock))
    await wait_for_assignment([s.runtime for s in engine.services])
    await engine.quiet()
    release = asyncio.Event()
    consumers = hold_ledger_consumer(engine, release)
    await engine.publish(customer(), invoice("INV-1", due=engine.today - timedelta(days=10)))
    # One replica holds the customer's partition; the other's own lag is 0, yet the group has not applied it.
    own_lags = [await c.lag() for c in consumers]
    assert 0 in own_lags and any(lag for lag in own_lags), own_lags
    for svc in engine.services:
        async with svc.client("acme-api-key") as api:
            r = await api.get("/v1/invoices/INV-1/timeline")
            assert (r.status_code, r.json()["title"]) == (404, "Not arrived yet"), r.text
    release.set()
    await engine.quiet()
    for svc in engine.services:
        async with svc.client("acme-api-key") as api:
            assert (await api.get("/v1/invoices/INV-1/timeline")).status_code == 200
