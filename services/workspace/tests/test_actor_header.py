"""Every call the workspace makes for a person carries that person, signed (`Dunning-Actor`, dunning_kit.actor):
the services verify it with the public half of WORKSPACE_ACTOR_SIGNING_KEY and record the name with what changed.
(The services' own tests prove what they do with it; here: what the workspace sends.)"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from dunning_kit.actor import HEADER, Actor, ActorRefused, signing_key, verify, verify_keys
from dunning_kit.clock import SimulatedClock
from dunning_kit.dev_secrets import DEV_ACTOR_SIGNING_KEY, DEV_ACTOR_VERIFY_KEY, development_secrets
from dunning_kit.pytest_plugin import SIM_START
from workspace.adapters.platform import PlatformClient, parse_service_urls
from workspace.domain.people import Role
from workspace.settings import Settings
from workspace.testing import PEOPLE

URLS = parse_service_urls(Settings().workspace_service_urls)


async def test_a_call_for_a_person_carries_the_person_signed_at_the_platform_clock() -> None:
    clock = SimulatedClock(SIM_START)
    seen: list[httpx.Request] = []

    def service(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    platform = PlatformClient(URLS, {"acme": "acme-admin-key"}, transport=httpx.MockTransport(service),
                              actor_key=signing_key(DEV_ACTOR_SIGNING_KEY), clock=clock)  # fmt: skip
    try:
        await platform.call(PEOPLE[Role.collector], "PUT", "policy-engine", "/v1/customers/C-1/dunning-block")
        clock.advance(hours=1)  # a later call gets a token of its own, fresh at the moved clock
        await platform.call(PEOPLE[Role.manager], "PUT", "notifier", "/v1/templates/reminder")
    finally:
        await platform.close()
    first, later = seen
    assert first.headers["authorization"] == "Bearer acme-admin-key"
    keys = verify_keys(DEV_ACTOR_VERIFY_KEY)
    assert verify(first.headers[HEADER], keys, SIM_START, "acme") == Actor(
        sub="sub-colin", name="Colin Collector", email="colin@acme.test", role="collector", tenant="acme"
    )
    with pytest.raises(ActorRefused, match="expired"):  # it lives minutes, not the session's hours
        verify(first.headers[HEADER], keys, SIM_START + timedelta(minutes=5), "acme")
    assert verify(later.headers[HEADER], keys, clock.now(), "acme").name == "Mona Manager"


def test_the_signing_key_is_checked_at_start_and_the_shipped_one_never_serves_production() -> None:
    with pytest.raises(ValueError, match="32 bytes") as refused:
        Settings(workspace_actor_signing_key="c2VjcmV0LWJ1dC1zaG9ydA")
    assert "c2VjcmV0LWJ1dC1zaG9ydA" not in str(refused.value), "a refused secret is not echoed"
    assert "WORKSPACE_ACTOR_SIGNING_KEY" in development_secrets(Settings())
    assert "WORKSPACE_ACTOR_SIGNING_KEY" in development_secrets(
        Settings(workspace_actor_signing_key=DEV_ACTOR_SIGNING_KEY)
    )
