"""Who acted (`Dunning-Actor`, dunning_kit.actor): each saved version of a template records its author, shown by
GET and the version list; the audit log names the person; a refused actor writes nothing; a key alone saves as
before (no author). One notifier for the whole story."""

from __future__ import annotations

from dunning_kit.actor import HEADER
from dunning_kit.testing import COLIN, MONA, RunningService, acting_as

from .test_api import CUSTOM

TEMPLATE = "/v1/templates/firm_reminder"


async def test_template_versions_record_their_author_and_a_refused_person_saves_nothing(
    notifier: RunningService,
) -> None:
    clock = notifier.runtime.clock
    async with notifier.client("acme-admin-key") as admin, notifier.client("globex-admin-key") as globex:
        refused = await globex.put(TEMPLATE, json=CUSTOM, headers=acting_as(MONA, clock))
        assert refused.status_code == 401 and refused.json()["errors"][0]["field"] == HEADER, "acme's person"
        assert (await globex.get(TEMPLATE, params={"locale": "en"})).json()["origin"] == "shipped"

        saved = await admin.put(TEMPLATE, json=CUSTOM, headers=acting_as(MONA, clock))
        assert saved.status_code == 200, saved.text
        assert (saved.json()["version"], saved.json()["author"]) == (1, {"sub": "mona", "name": "Mona Manager"})
        shown = (await admin.get(TEMPLATE, params={"locale": "en"})).json()
        assert (shown["version"], shown["author"]["name"]) == (1, "Mona Manager")

        again = await admin.put(TEMPLATE, json={**CUSTOM, "subject": "Second"})  # a key alone: no author
        assert (again.json()["version"], again.json()["author"]) == (2, None)
        assert (
            await admin.delete(TEMPLATE, params={"locale": "en"}, headers=acting_as(COLIN, clock))
        ).status_code == 204
        third = await admin.put(TEMPLATE, json=CUSTOM, headers=acting_as(COLIN, clock))
        assert third.json()["version"] == 3, "a template saved again goes on from its history"

        versions = (await admin.get(f"{TEMPLATE}/versions", params={"locale": "en"})).json()["items"]
        assert [(v["version"], v["author"] and v["author"]["name"], v["subject"]) for v in versions] == [
            (1, "Mona Manager", CUSTOM["subject"]),
            (2, None, "Second"),
            (3, "Colin Collector", CUSTOM["subject"]),
        ]
        audit = (await admin.get("/v1/audit-log")).json()["items"]
        assert [(e["method"], e["actor"]["name"], e["targets"], e["outcome"]) for e in audit] == [
            ("PUT", "Colin Collector", {"template_id": "firm_reminder"}, "applied"),
            ("DELETE", "Colin Collector", {"template_id": "firm_reminder"}, "applied"),
            ("PUT", "Mona Manager", {"template_id": "firm_reminder"}, "applied"),
        ]
        assert (await globex.get("/v1/audit-log")).json()["items"] == []
