"""The workspace's calls carry the person end to end: its PlatformClient signs `Dunning-Actor` with the workspace's
configured key at the platform's clock, and a real policy engine over HTTP verifies it and records the person as
the author of the policy version it published, and in its audit log. A workspace signing with a key the engine
does not trust is refused and publishes nothing."""

from __future__ import annotations

from dunning_kit.actor import signing_key
from dunning_kit.clock import SimulatedClock
from dunning_kit.dev_secrets import DEV_ACTOR_SIGNING_KEY
from dunning_kit.services import spec
from dunning_kit.testing import BrokerBackend, start_service
from workspace.adapters.platform import PlatformClient
from workspace.domain.people import Role
from workspace.settings import Settings
from workspace.testing import PEOPLE

POLICY = {"id": "smb", "name": "Small business",
          "steps": [{"name": "nudge", "offset_days": 1, "channels": ["email"], "template_id": "nudge", "tone": "gentle"}]}  # fmt: skip
UNTRUSTED = "xxsZh6V4bM1q8E0rYt3uLw7aPz2cNd9fGh5jKl0mQ4s"


async def test_a_policy_published_from_the_workspace_names_the_manager_who_published_it(
    database_url: str, broker: BrokerBackend, clock: SimulatedClock
) -> None:
    engine = await start_service(
        spec("policy-engine"), database_url=database_url, bootstrap_servers=broker.bootstrap_servers, clock=clock
    )
    urls = {**{s: "http://127.0.0.1:1" for s in ("ledger-sync", "notifier", "promise-tracker", "insights")},
            "policy-engine": engine.base_url}  # fmt: skip
    keys = {"acme": "acme-admin-key"}

    def platform(key: str) -> PlatformClient:
        return PlatformClient(urls, keys, actor_key=signing_key(key), clock=clock)

    workspace, impostor = platform(Settings().workspace_actor_signing_key), platform(UNTRUSTED)
    assert Settings().workspace_actor_signing_key == DEV_ACTOR_SIGNING_KEY  # what `make up` runs with
    mona = PEOPLE[Role.manager]
    try:
        refused = await impostor.call(mona, "POST", "policy-engine", "/v1/policies", json=POLICY)
        assert refused.status_code == 401, refused.text
        published = await workspace.call(mona, "POST", "policy-engine", "/v1/policies", json=POLICY)
        assert published.status_code == 201, published.text
        (version,) = (await workspace.get_json(mona, "policy-engine", "/v1/policies/smb/versions"))["items"]
        assert version["author"] == {"sub": "sub-mona", "name": "Mona Manager"}
        (entry,) = (await workspace.get_json(mona, "policy-engine", "/v1/audit-log"))["items"]
        assert (entry["actor"]["email"], entry["actor"]["role"], entry["route"]) == (
            "mona@acme.test", "manager", "/v1/policies",
        )  # fmt: skip
    finally:
        await workspace.close()
        await impostor.close()
        await engine.stop()
