"""The frame every page shares: no page without a live session (and back to it after sign-in), roles refused
with the 403 page, forms refused without the session's CSRF token, the UI in English and German."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from dunning_kit.clock import SimulatedClock
from dunning_kit.testing import RunningService
from workspace.domain.people import Role
from workspace.entrypoints.people import CheckedForm, require
from workspace.service_layer.sessions import SignedIn
from workspace.testing import PEOPLE, session_cookie
from workspace.texts import LANGUAGES, catalog

# One worker holds the module's platform (module-scoped) for all its tests, in file order.
pytestmark = pytest.mark.xdist_group("workspace-frame")


def client(svc: RunningService, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=svc.base_url, cookies=cookies or {}, follow_redirects=False, timeout=30)


async def test_a_page_without_a_session_sends_to_sign_in_and_remembers_the_page(workspace: RunningService) -> None:
    async with client(workspace) as browser:
        r = await browser.get("/", params={"currency": "EUR"})
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert target.path == "/sign-in"
    assert parse_qs(target.query)["next"] == ["/?currency=EUR"]


async def test_a_session_shows_the_page_with_the_person_and_the_headers(workspace: RunningService) -> None:
    cookies, _ = await session_cookie(workspace.runtime, PEOPLE[Role.collector])
    async with client(workspace, cookies) as browser:
        r = await browser.get("/")
    assert r.status_code == 200
    assert "Colin Collector" in r.text and "collector" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


async def test_an_idle_session_ends(workspace: RunningService) -> None:
    cookies, _ = await session_cookie(workspace.runtime, PEOPLE[Role.viewer])
    clock = workspace.runtime.clock
    assert isinstance(clock, SimulatedClock)
    clock.advance(timedelta(minutes=31))
    async with client(workspace, cookies) as browser:
        r = await browser.get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")


# A route of the test's own, mounted on the running app: a collector action behind a form.
probe = APIRouter()
done: list[str] = []


@probe.post("/test-only/act", response_class=HTMLResponse)
async def act(form: CheckedForm, signed: SignedIn = Depends(require(Role.collector))) -> str:
    done.append(str(form.get("what")))
    return "done"


@pytest.fixture(scope="module")
def with_probe(workspace: RunningService) -> RunningService:
    workspace.app.include_router(probe)
    return workspace


async def test_a_role_below_the_route_gets_the_403_page_and_nothing_is_done(with_probe: RunningService) -> None:
    cookies, signed = await session_cookie(with_probe.runtime, PEOPLE[Role.viewer])
    async with client(with_probe, cookies) as browser:
        r = await browser.post("/test-only/act", data={"csrf_token": signed.csrf_token, "what": "viewer"})
    assert r.status_code == 403
    assert "Not allowed" in r.text and "collector" in r.text
    assert "viewer" not in done


async def test_a_form_without_the_sessions_csrf_token_is_refused(with_probe: RunningService) -> None:
    cookies, signed = await session_cookie(with_probe.runtime, PEOPLE[Role.collector])
    _, other = await session_cookie(with_probe.runtime, PEOPLE[Role.collector])
    async with client(with_probe, cookies) as browser:
        missing = await browser.post("/test-only/act", data={"what": "missing"})
        foreign = await browser.post("/test-only/act", data={"csrf_token": other.csrf_token, "what": "foreign"})
        right = await browser.post("/test-only/act", data={"csrf_token": signed.csrf_token, "what": "right"})
    assert missing.status_code == 403 and foreign.status_code == 403
    assert "Form expired" in missing.text
    assert right.status_code == 200
    assert done.count("right") == 1 and "missing" not in done and "foreign" not in done


async def test_a_form_posted_after_the_session_ended_returns_to_its_page(with_probe: RunningService) -> None:
    async with client(with_probe) as browser:
        r = await browser.post(
            "/test-only/act",
            data={"what": "late"},
            headers={"referer": f"{with_probe.base_url}/customers/C-1?tab=notes"},
        )
    assert r.status_code == 303
    assert parse_qs(urlsplit(r.headers["location"]).query)["next"] == ["/customers/C-1?tab=notes"]
    assert "late" not in done


async def test_the_ui_speaks_german_when_asked(workspace: RunningService) -> None:
    cookies, _ = await session_cookie(workspace.runtime, PEOPLE[Role.manager])
    async with client(workspace, cookies) as browser:
        by_header = await browser.get("/", headers={"accept-language": "de-DE,de;q=0.9"})
        switched = await browser.get("/language/en", params={"next": "https://evil.example/"})
    assert by_header.status_code == 200 and "Abmelden" in by_header.text and 'lang="de"' in by_header.text
    assert switched.status_code == 303 and switched.headers["location"] == "/"  # never off the site


def test_every_text_exists_in_every_language() -> None:
    missing = [(key, lang) for key, texts in catalog().items() for lang in LANGUAGES if not texts.get(lang)]
    assert missing == []
