"""Message templates through the real notifier: the draft of one language rendered beside the others, a part the
notifier cannot render shown at its field with the input kept, saving only for managers."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from dunning_kit.testing import PostgresBackend
from workspace.domain.people import Role
from workspace.testing import PEOPLE

from .pages_platform import PagesPlatform, pages_platform

# One worker holds the module's platform (module-scoped) for all its tests, in file order.
pytestmark = pytest.mark.xdist_group("workspace-templates")

TEMPLATE = "due_date_notice"


@pytest_asyncio.fixture(scope="module")
async def platform(pg_backend: PostgresBackend) -> AsyncIterator[PagesPlatform]:
    async with pages_platform(pg_backend, ["notifier"]) as running:
        yield running


async def browser(platform: PagesPlatform, role: Role) -> tuple[httpx.AsyncClient, str]:
    client, signed = await platform.browser(PEOPLE[role])
    return client, signed.csrf_token


def field(page: str, name: str) -> str:
    textarea = re.search(rf'<textarea id="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    if textarea:
        return html.unescape(textarea.group(1))
    single = re.search(rf'<input id="{name}" name="{name}" value="([^"]*)"', page)
    assert single, f"no field {name}"
    return html.unescape(single.group(1))


def subjects(page: str) -> dict[str, str]:
    """Each rendered language's subject."""
    return {
        m.group(1): html.unescape(m.group(2))
        for m in re.finditer(r'<h3 id="render-([a-z-]+)">.*?</h3>\s*<p><strong>(.*?)</strong>', page, re.S)
    }


async def test_a_draft_is_previewed_beside_the_other_languages_and_a_manager_saves_it(
    platform: PagesPlatform,
) -> None:
    client, csrf = await browser(platform, Role.manager)
    async with client:
        listed = await client.get("/templates")
        assert listed.status_code == 200 and f'href="/templates/{TEMPLATE}"' in listed.text
        page = await client.get(f"/templates/{TEMPLATE}", params={"locale": "en"})
        assert page.status_code == 200
        before = subjects(page.text)
        assert {"en", "de"} <= set(before)
        form = {p: field(page.text, p) for p in ("subject", "text", "html", "sms", "voice")}
        assert form["subject"] and form["text"]

        draft = {**form, "subject": "Due today: " + form["subject"], "locale": "en", "csrf_token": csrf}
        r = await client.post(f"/templates/{TEMPLATE}/preview", data=draft)
        assert r.status_code == 200, r.text[:300]
        after = subjects(r.text)
        assert after["en"].startswith("Due today: ") and after["de"] == before["de"]
        assert field(r.text, "subject") == draft["subject"]

        broken = {**draft, "text": form["text"] + "\n{% if %}"}
        r = await client.post(f"/templates/{TEMPLATE}/preview", data=broken)
        assert r.status_code == 422
        assert re.search(r'<p id="text-error" class="error">[^<]+</p>', r.text)
        assert field(r.text, "text") == broken["text"]
        empty = await client.post(f"/templates/{TEMPLATE}/preview", data={**draft, "subject": " "})
        assert empty.status_code == 422 and '<p id="subject-error" class="error">required</p>' in empty.text

        saved = await client.post(f"/templates/{TEMPLATE}/save", data=draft, follow_redirects=False)
        assert saved.status_code == 303
        shown = await client.get(saved.headers["location"])
        assert "Saved." in shown.text and field(shown.text, "subject") == draft["subject"]
    async with platform.api("notifier", "acme-api-key") as api:
        stored = (await api.get(f"/v1/templates/{TEMPLATE}", params={"locale": "en"})).json()
    assert (stored["origin"], stored["subject"]) == ("tenant", draft["subject"])


async def test_a_collector_previews_but_cannot_save(platform: PagesPlatform) -> None:
    client, csrf = await browser(platform, Role.collector)
    async with client:
        page = await client.get(f"/templates/{TEMPLATE}", params={"locale": "de"})
        assert page.status_code == 200 and "Only a manager can save" in page.text and "/save" not in page.text
        form = {p: field(page.text, p) for p in ("subject", "text")}
        r = await client.post(f"/templates/{TEMPLATE}/save", data={**form, "locale": "de", "csrf_token": csrf})
        assert r.status_code == 403
        # An id that would move the call to another route of the notifier never reaches it.
        assert (await client.get("/templates/%2E%2E")).status_code == 404
