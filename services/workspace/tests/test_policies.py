"""Policies changed safely, through the real policy engine: a manager edits the YAML, sees each error at its line,
previews the draft against the live portfolio (messages per day and channel, who is contacted differently, the
diff), and publishes only what was previewed; a viewer reads and cannot change."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio
import yaml

from dunning_kit.event_testing import LedgerFeed, start_producer
from dunning_kit.testing import PostgresBackend
from workspace.domain.people import Role
from workspace.testing import PEOPLE

from .pages_platform import PagesPlatform, pages_platform, unlabelled

# One worker holds the module's platform (module-scoped) for all its tests, in file order.
pytestmark = pytest.mark.xdist_group("workspace-policies")


@pytest_asyncio.fixture(scope="module")
async def platform(pg_backend: PostgresBackend) -> AsyncIterator[PagesPlatform]:
    """The policy engine with one customer's invoice due in six days, and a workspace calling it."""
    async with pages_platform(pg_backend, ["policy-engine"]) as running:
        engine = running.services["policy-engine"]
        producer = await start_producer(engine.runtime.settings.kafka_bootstrap_servers)
        async with LedgerFeed(producer, running.clock) as feed:
            await feed.customer("C-1")
            await feed.invoice("INV-1", "C-1", "250.00", due_in_days=6)
        await running.quiet()
        yield running


async def browser(platform: PagesPlatform, role: Role) -> tuple[httpx.AsyncClient, str]:
    client, signed = await platform.browser(PEOPLE[role])
    return client, signed.csrf_token


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    import html as html_lib

    return html_lib.unescape(match.group(1))


def textarea(html: str) -> str:
    import html as html_lib

    match = re.search(r'<textarea id="draft"[^>]*>(.*?)</textarea>', html, re.S)
    assert match, "no editor"
    return html_lib.unescape(match.group(1))


async def test_a_manager_sees_errors_at_their_lines_previews_the_draft_and_publishes_what_was_previewed(
    platform: PagesPlatform,
) -> None:
    client, csrf = await browser(platform, Role.manager)
    async with client:
        listed = await client.get("/policies")
        assert listed.status_code == 200 and 'href="/policies/default"' in listed.text
        page = await client.get("/policies/default")
        assert page.status_code == 200
        text = textarea(page.text)
        assert "due_date_notice" in text

        # A YAML syntax error, found before any call, at its line; the text is kept.
        broken = text.replace("steps:", "steps: [", 1)
        r = await client.post("/policies/default/preview", data={"csrf_token": csrf, "draft": broken, "days": "14"})
        assert r.status_code == 422 and "not valid YAML" in r.text and textarea(r.text) == broken
        # A field the policy engine refuses, shown at the line it is on in the person's text.
        lines = text.splitlines()
        at = next(n for n, line in enumerate(lines) if "offset_days: 0" in line)
        wrong = "\n".join(lines[:at] + [lines[at].replace("offset_days: 0", "offset_days: soon")] + lines[at + 1 :])
        r = await client.post("/policies/default/preview", data={"csrf_token": csrf, "draft": wrong, "days": "14"})
        assert r.status_code == 422, r.text[:500]
        step = sum(1 for line in lines[: at + 1] if line.lstrip().startswith("- name:")) - 1
        assert f"Line {at + 1}: steps[{step}].offset_days" in r.text
        assert textarea(r.text) == wrong

        # A valid draft: the due-date notice two days later.
        draft = "\n".join(lines[:at] + [lines[at].replace("offset_days: 0", "offset_days: 2")] + lines[at + 1 :])
        r = await client.post("/policies/default/preview", data={"csrf_token": csrf, "draft": draft, "days": "14"})
        assert r.status_code == 200, re.findall(r"<li>.*?</li>", r.text)[:8]
        assert "Messages per day and channel" in r.text
        assert re.search(r'Contacted differently \(1\)</h2>\s*<ul class="inline"><li><a href="/customers/C-1">', r.text)
        assert '<tr class="removed">' in r.text and '<tr class="added">' in r.text  # the diff
        previewed = hidden(r.text, "previewed")
        assert hidden(r.text, "draft") == draft

        # Publishing a text other than the one previewed is refused; the previewed one is published.
        tampered = draft.replace("offset_days: 2", "offset_days: 1")
        r = await client.post(
            "/policies/default/publish",
            data={"csrf_token": csrf, "draft": tampered, "days": "14", "previewed": previewed},
        )
        assert r.status_code == 422 and "preview it again" in r.text
        r = await client.post(
            "/policies/default/publish",
            data={"csrf_token": csrf, "draft": draft, "days": "14", "previewed": previewed},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/policies/default?published=2"
        shown = await client.get(r.headers["location"])
        assert "Version 2 was published" in shown.text
    async with platform.api("policy-engine") as admin:
        in_force: dict[str, Any] = (await admin.get("/v1/policies/default")).json()
    assert in_force["version"] == 2
    assert next(s for s in in_force["steps"] if s["name"] == "due_date_notice")["offset_days"] == 2


async def test_a_viewer_reads_a_policy_and_cannot_preview_or_publish(platform: PagesPlatform) -> None:
    client, csrf = await browser(platform, Role.viewer)
    async with client:
        page = await client.get("/policies/default")
        assert page.status_code == 200 and "<textarea" not in page.text and "Only a manager" in page.text
        r = await client.post("/policies/default/preview", data={"csrf_token": csrf, "draft": "id: default\n"})
        assert r.status_code == 403
        r = await client.post(
            "/policies/default/publish", data={"csrf_token": csrf, "draft": "id: default\n", "previewed": "x"}
        )
        assert r.status_code == 403


def test_the_diff_shows_each_change_with_three_lines_around_it_and_counts_what_it_hides() -> None:
    from workspace.service_layer.policy_drafts import diff

    before = "\n".join(f"line {n}" for n in range(1, 21))
    after = before.replace("line 10", "line ten")
    shown = [(d.kind, d.text, d.old_line, d.new_line) for d in diff(before, after)]
    assert shown == [
        ("skipped", "6", None, None),
        *[("same", f"line {n}", n, n) for n in (7, 8, 9)],
        ("removed", "line 10", 10, None), ("added", "line ten", None, 10),
        *[("same", f"line {n}", n, n) for n in (11, 12, 13)],
        ("skipped", "7", None, None),
    ]  # fmt: skip
    assert [d.kind for d in diff("a\nb", "a\nb")] == ["skipped"]  # nothing changed: everything hidden


async def test_an_admin_sees_who_published_the_policy_and_a_manager_may_not(platform: PagesPlatform) -> None:
    """The audit page merges the services' audit logs: a policy published through the workspace's client for
    Mona Manager (the actor header it signs), recorded by the policy engine with the change; the services that do
    not run say so."""
    async with platform.api("policy-engine") as api:
        doc = {k: v for k, v in (await api.get("/v1/policies/default")).json().items() if k != "version"}
    published = await platform.workspace.runtime.objects.platform.call(
        PEOPLE[Role.manager], "PUT", "policy-engine", "/v1/policies/default", json=doc
    )
    assert published.status_code == 200, published.text
    admin, _ = await browser(platform, Role.admin)
    manager, _ = await browser(platform, Role.manager)
    async with admin, manager:
        page = await admin.get("/audit")
        mine = await admin.get("/audit", params={"person": PEOPLE[Role.manager].subject})
        nobody = await admin.get("/audit", params={"person": "sub-nobody"})
        refused = await manager.get("/audit")
    assert page.status_code == 200
    row = re.search(r"<tr>\s*<td>[^<]+</td>\s*<td>Mona Manager.*?</tr>", page.text, re.S)
    assert row and "PUT /v1/policies/default" in row.group(0) and "done" in row.group(0)
    assert page.text.count("could not be loaded") == 4  # ledger-sync, notifier, promise-tracker, insights
    assert "Mona Manager" in mine.text and "Mona Manager" not in nobody.text and "Nothing recorded yet" in nobody.text
    assert refused.status_code == 403


class _FormFields(HTMLParser):
    """What a browser would send for the page's policy form: inputs, checked boxes, selected options."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._first: str | None = None
        self._chosen = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("type") not in ("submit", "checkbox") and "name" in a:
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "input" and a.get("type") == "checkbox" and "checked" in a:
            self.fields.append((a["name"], a["value"]))
        elif tag == "select":
            self._select, self._first, self._chosen = a["name"], None, False
        elif tag == "option" and self._select is not None:
            if self._first is None:
                self._first = a["value"]
            if "selected" in a and not self._chosen:
                self.fields.append((self._select, a["value"]))
                self._chosen = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None:
            if not self._chosen and self._first is not None:
                self.fields.append((self._select, self._first))
            self._select = None


def form_fields(page: str) -> list[tuple[str, str]]:
    parser = _FormFields()
    parser.feed(page.split('class="policy-form"')[1].split("</form>")[0])
    return parser.fields


async def post_form(client: httpx.AsyncClient, fields: list[tuple[str, str]]) -> httpx.Response:
    """The policy form posted as a browser does (repeated names: the checked channels of a step)."""
    return await client.post("/policies/default/form", content=urlencode(fields),
                             headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip


def with_values(fields: list[tuple[str, str]], **changes: str) -> list[tuple[str, str]]:
    """The fields with some changed (`steps_1_offset_days` is `steps[1].offset_days`)."""
    names = {re.sub(r"_(\d+)_", r"[\1].", k).replace("quiet_hours_", "quiet_hours."): v for k, v in changes.items()}
    return [(n, names.get(n, v)) for n, v in fields]


async def test_a_policy_edited_as_a_form_is_the_same_yaml_through_the_same_preview(platform: PagesPlatform) -> None:
    client, csrf = await browser(platform, Role.manager)
    async with platform.api("policy-engine") as admin:
        in_force = {k: v for k, v in (await admin.get("/v1/policies/default")).json().items() if k != "version"}
    async with client:
        yaml_text = textarea((await client.get("/policies/default")).text)
        page = await client.get("/policies/default/form")
        assert page.status_code == 200 and unlabelled(page.text) == []
        assert 'type="text" value="pre_due_reminder"' in page.text
        fields = [("csrf_token", csrf), *form_fields(page.text)]
        # Unchanged, the form is the YAML editor's text: the preview's diff shows nothing changed.
        r = await post_form(client, [*fields, ("do", "preview")])
        assert r.status_code == 200, r.text[:2000]
        assert hidden(r.text, "draft") == yaml_text and '<tr class="added">' not in r.text
        assert 'data-confirm="Publish this draft as version' in r.text  # the script asks before publishing
        # Two fields changed and the first step removed (a button, no JavaScript): the same policy otherwise, the
        # unshown fields (channel_mode) kept with their step.
        edited = with_values(fields, steps_1_offset_days="2", quiet_hours_end="20:00")
        r = await post_form(client, [*edited, ("do", "remove_step:0")])
        assert r.status_code == 200 and 'type="text" value="pre_due_reminder"' not in r.text
        r = await post_form(client, [*form_fields(r.text), ("csrf_token", csrf), ("do", "preview")])
        assert r.status_code == 200, r.text[:2000]
        expected = {**in_force, "quiet_hours": {"start": "08:00", "end": "20:00"}, "steps": in_force["steps"][1:]}
        expected["steps"][0] = {**expected["steps"][0], "offset_days": 2}
        assert yaml.safe_load(hidden(r.text, "draft")) == expected
        # A step added by its button comes after the last one, a week later, by e-mail.
        r = await post_form(client, [*fields, ("do", "add_step")])
        count = len(in_force["steps"])
        last = in_force["steps"][-1]["offset_days"]
        assert f'name="steps[{count}].offset_days" type="text" value="{last + 7}"' in r.text


async def test_a_form_error_from_the_policy_engine_is_shown_at_its_field_with_the_input_kept(
    platform: PagesPlatform,
) -> None:
    client, csrf = await browser(platform, Role.manager)
    async with client:
        fields = [("csrf_token", csrf), *form_fields((await client.get("/policies/default/form")).text)]
        wrong = [(n, v) for n, v in with_values(fields, steps_2_offset_days="soon") if n != "steps[0].channels"]
        r = await post_form(client, [*wrong, ("do", "preview")])
    assert r.status_code == 422, r.text[:2000]
    offset = r.text.split('id="f-steps[2].offset_days"')[1].split("</span>")[0]
    assert 'value="soon"' in offset and 'aria-invalid="true"' in offset
    assert re.search(r'id="f-steps\[2\]\.offset_days-error">[^<]*must be an integer', r.text)
    assert re.search(r'id="f-steps\[0\]\.channels-error">[^<]*at least 1', r.text)
    assert 'href="#f-steps[2].offset_days"' in r.text  # the summary links to the field


async def test_a_viewer_gets_no_policy_form(platform: PagesPlatform) -> None:
    client, csrf = await browser(platform, Role.viewer)
    async with client:
        page = await client.get("/policies/default/form")
        posted = await client.post("/policies/default/form", data={"csrf_token": csrf, "base": "id: default\n"})
    assert page.status_code == 403 and posted.status_code == 403


def test_an_engine_error_belongs_to_the_deepest_form_field_that_holds_it() -> None:
    from workspace.service_layer.policy_form import field_of

    fields = {"steps", "steps[1]", "steps[1].channels", "steps[1].name", "steps[10].name", "quiet_hours.end"}
    assert field_of("steps[1].channels[0]", fields) == "steps[1].channels"
    assert field_of("steps[1].fees", fields) == "steps[1]"  # not in the form: at its step
    assert field_of("steps[10].name", fields) == "steps[10].name"
    assert field_of("quiet_hours.end", fields) == "quiet_hours.end"
    assert field_of("minimum_balance", fields) is None


async def test_the_editors_check_answers_each_error_with_its_line_and_nothing_for_a_valid_draft(
    platform: PagesPlatform,
) -> None:
    """What the editor's script asks as the person types (the policy engine's validation, no dry run)."""
    client, csrf = await browser(platform, Role.manager)
    viewer, viewer_csrf = await browser(platform, Role.viewer)
    async with client, viewer:
        text = textarea((await client.get("/policies/default")).text)
        lines = text.splitlines()
        at = next(n for n, line in enumerate(lines) if "offset_days:" in line)
        wrong = "\n".join(lines[:at] + [lines[at].split("offset_days:")[0] + "offset_days: soon"] + lines[at + 1 :])
        bad = await client.post("/policies/default/check", data={"csrf_token": csrf, "draft": wrong})
        broken = await client.post("/policies/default/check", data={"csrf_token": csrf, "draft": "steps: ["})
        good = await client.post("/policies/default/check", data={"csrf_token": csrf, "draft": text})
        refused = await viewer.post("/policies/default/check", data={"csrf_token": viewer_csrf, "draft": text})
    assert bad.status_code == 200 and bad.json()["errors"] == [{
        "field": "steps[0].offset_days", "reason": "must be an integer", "line": at + 1,
        "text": f"Line {at + 1}: steps[0].offset_days: must be an integer",
    }]  # fmt: skip
    assert [e["line"] for e in broken.json()["errors"]] == [1] and "not valid YAML" in broken.json()["errors"][0][
        "text"
    ]
    assert good.json()["errors"] == [] and good.json()["ok_text"]
    assert refused.status_code == 403


async def test_a_yaml_draft_opens_as_a_form_and_the_form_goes_back_to_yaml_with_its_edits(
    platform: PagesPlatform,
) -> None:
    client, csrf = await browser(platform, Role.manager)
    async with client:
        text = textarea((await client.get("/policies/default")).text)
        draft = text.replace("end: '21:00'", "end: '19:30'", 1)
        assert draft != text
        opened = await client.post("/policies/default/form", data={"csrf_token": csrf, "draft": draft, "days": "14"})
        assert opened.status_code == 200 and 'name="quiet_hours.end" type="time" value="19:30"' in opened.text
        fields = with_values([("csrf_token", csrf), *form_fields(opened.text)], quiet_hours_end="19:00")
        as_yaml_again = await post_form(client, [*fields, ("do", "yaml")])
        broken = await client.post("/policies/default/form", data={"csrf_token": csrf, "draft": "steps: ["})
    assert as_yaml_again.status_code == 200
    assert textarea(as_yaml_again.text) == text.replace("end: '21:00'", "end: '19:00'", 1)
    assert broken.status_code == 422 and "not valid YAML" in broken.text  # back in the YAML editor, at its line
