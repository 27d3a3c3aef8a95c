"""Signing in with OpenID Connect against the real development identity provider over HTTP: the code + PKCE
flow lands on the page asked for; a tampered state, a replayed callback, a wrong verifier or nonce, a token from
another key sign nobody in; roles from the claim and from the table; no role or tenant: refused; sign-out ends the
session; an expired session signs in again and comes back to its page. One test drives chromium through the form."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import pytest_asyncio
from fastapi.responses import HTMLResponse
from joserfc.jwk import RSAKey

from dunning_kit.clock import SimulatedClock
from dunning_kit.dev_secrets import DEV_OIDC_CLIENT_SECRET
from dunning_kit.devfakes.asgi_server import AsgiServer
from dunning_kit.embedded import free_port
from dunning_kit.testing import RunningService
from workspace.dev_idp.provider import DevIdentityProvider, IssuedCode, RegisteredClient
from workspace.dev_idp.users import DevPerson, seeded
from workspace.domain.identity import IdentityRefused, IdentityRules, parse_role_map, person_from_claims
from workspace.domain.people import Role
from workspace.entrypoints.people import cookie_name
from workspace.service_layer.oidc import OidcSignIn, SignInFailed
from workspace.settings import Settings

# One worker holds the module's platform (module-scoped) for all its tests, in file order.
pytestmark = pytest.mark.xdist_group("workspace-sign_in")

# People the seeded four do not cover: no roles claim (the table gives rory one), no role at all, no tenant, and
# a tenant this workspace has no API key for.
EXTRA = [
    DevPerson("rory", "rory-dev", "Rory Roleless", "Rory@acme.test", roles=None),
    DevPerson("nina", "nina-dev", "Nina Nobody", "nina@acme.test", roles=["auditor"]),
    DevPerson("tom", "tom-dev", "Tom Tenantless", "tom@acme.test", roles=["collector"], tenant=None),
    DevPerson("gus", "gus-dev", "Gus Globex", "gus@globex.test", roles=["admin"], tenant="globex"),
]
PASSWORDS = {p.username: p.password for p in [*seeded(), *EXTRA]}


@pytest_asyncio.fixture(scope="module")
async def idp(workspace: RunningService) -> AsyncIterator[DevIdentityProvider]:
    """The dev IdP in this process on the workspace's clock, and the workspace pointed at it (its port, and so
    the workspace's public URL, are known only once both listen)."""
    server = AsgiServer()  # its port, and so the issuer, is known before the provider is made
    clock = workspace.runtime.clock
    client = RegisteredClient.for_workspace("workspace", DEV_OIDC_CLIENT_SECRET, workspace.base_url)
    provider = DevIdentityProvider(server.base_url, [client], [*seeded(), *EXTRA], clock)
    await server.start(provider.app)
    settings = workspace.runtime.settings
    settings.workspace_oidc_issuer = provider.issuer
    settings.workspace_public_url = workspace.base_url
    settings.workspace_role_map = "rory@acme.test=collector, vera@acme.test=manager"
    try:
        yield provider
    finally:
        await server.stop()


def browser(svc: RunningService) -> httpx.AsyncClient:
    """A browser: keeps cookies, follows nothing by itself (each hop is asserted)."""
    return httpx.AsyncClient(base_url=svc.base_url, follow_redirects=False, timeout=30)


async def to_provider(http: httpx.AsyncClient, next_path: str = "/") -> dict[str, str]:
    """GET /sign-in: the workspace's redirect to the provider, as the authorization request's parameters."""
    r = await http.get("/sign-in", params={"next": next_path})
    assert r.status_code == 303, r.text
    return {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}


async def at_provider(
    http: httpx.AsyncClient, idp: DevIdentityProvider, params: dict[str, str], user: str
) -> str:  # fmt: skip
    """The person signs in on the provider's form: the callback URL the provider sends the browser to."""
    form = await http.get(f"{idp.issuer}/authorize", params=params)
    assert form.status_code == 200, form.text
    r = await http.post(f"{idp.issuer}/authorize", data={**params, "username": user, "password": PASSWORDS[user]})
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


async def sign_in_as(
    http: httpx.AsyncClient, idp: DevIdentityProvider, user: str, next_path: str = "/"
) -> httpx.Response:  # fmt: skip
    """The whole flow: the workspace's answer to the callback."""
    return await http.get(await at_provider(http, idp, await to_provider(http, next_path), user))


async def test_a_collector_signs_in_with_code_and_pkce_and_lands_on_the_page_asked_for(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    async with browser(workspace) as http:
        asked = await http.get("/", params={"currency": "EUR"})
        assert asked.status_code == 303
        params = await to_provider(http, parse_qs(urlsplit(asked.headers["location"]).query)["next"][0])
        assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
        assert params["nonce"] and params["state"] and params["redirect_uri"] == f"{workspace.base_url}/auth/callback"
        done = await http.get(await at_provider(http, idp, params, "colin"))
        assert (done.status_code, done.headers["location"]) == (303, "/?currency=EUR")
        session_cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("workspace_session="))
        assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie and "Path=/" in session_cookie
        assert http.cookies.get("workspace_sign_in") is None, "the state cookie is spent"
        page = await http.get(done.headers["location"])
    assert page.status_code == 200
    assert "Signed in as Colin Collector (collector)" in page.text


async def test_the_role_comes_from_the_table_when_the_token_names_none_or_a_lower_one(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    async with browser(workspace) as http:
        assert (await sign_in_as(http, idp, "rory")).status_code == 303
        rory = await http.get("/")
    async with browser(workspace) as http:
        assert (await sign_in_as(http, idp, "vera")).status_code == 303
        vera = await http.get("/")
    assert "Signed in as Rory Roleless (collector)" in rory.text
    assert "Signed in as Vera Viewer (manager)" in vera.text, "the higher of claim (viewer) and table (manager)"


@pytest.mark.parametrize(
    ("user", "says"),
    [
        ("nina", "Nina Nobody has no role in the workspace: the identity provider&#39;s claim &#39;roles&#39;"),
        ("tom", "Tom Tenantless works for no tenant: the identity provider&#39;s claim &#39;tenant&#39; is missing"),
        ("gus", "Gus Globex works for tenant &#39;globex&#39;, which this workspace does not serve"),
    ],
)
async def test_a_person_the_workspace_cannot_serve_is_refused_with_the_reason_and_gets_no_session(
    workspace: RunningService, idp: DevIdentityProvider, user: str, says: str
) -> None:
    async with browser(workspace) as http:
        refused = await sign_in_as(http, idp, user)
        after = await http.get("/")
    assert refused.status_code == 403
    assert "No access to the workspace" in refused.text and says in refused.text
    assert cookie_name(False) not in http.cookies
    assert after.status_code == 303 and after.headers["location"].startswith("/sign-in")


async def test_a_tampered_state_or_a_callback_from_another_browser_signs_nobody_in(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    async with browser(workspace) as http:
        callback = await at_provider(http, idp, await to_provider(http), "adam")
        tampered = callback.replace("state=", "state=x")
        refused = await http.get(tampered)
        async with browser(workspace) as victim:  # a link to the callback, opened in someone else's browser
            elsewhere = await victim.get(callback)
    for r in (refused, elsewhere):
        assert r.status_code == 400
        assert "This sign-in was not started in this browser" in r.text
        assert not any(c.startswith(cookie_name(False)) for c in r.headers.get_list("set-cookie"))


async def test_a_replayed_callback_is_refused_after_the_sign_in_it_completed(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    async with browser(workspace) as http:
        params = await to_provider(http, "/?currency=USD")
        state_before = http.cookies.get("workspace_sign_in")
        callback = await at_provider(http, idp, params, "mona")
        first = await http.get(callback)
        http.cookies.set("workspace_sign_in", state_before or "")  # even with the state cookie kept
        again = await http.get(callback)
    assert first.status_code == 303 and first.headers["location"] == "/?currency=USD"
    assert again.status_code == 400 and "completed already" in again.text


@pytest.mark.parametrize(
    ("changed", "says"),
    [
        ({"code_challenge": "A" * 43}, "The identity provider refused the sign-in (invalid_grant)"),
        ({"nonce": "someone-elses-nonce"}, "could not be verified (InvalidClaimError)"),
    ],
)
async def test_a_wrong_pkce_verifier_or_nonce_signs_nobody_in(
    workspace: RunningService, idp: DevIdentityProvider, changed: dict[str, str], says: str
) -> None:
    """The authorization request altered on its way to the provider (another challenge, another nonce): the
    workspace's verifier no longer fits the code, or the token's nonce is not the one stored with the state."""
    async with browser(workspace) as http:
        params = {**await to_provider(http), **changed}
        refused = await http.get(await at_provider(http, idp, params, "colin"))
    assert refused.status_code == 400 and says in refused.text
    assert cookie_name(False) not in http.cookies


async def test_a_sign_in_left_for_more_than_ten_minutes_is_refused(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    clock = workspace.runtime.clock
    assert isinstance(clock, SimulatedClock)
    async with browser(workspace) as http:
        callback = await at_provider(http, idp, await to_provider(http), "colin")
        clock.advance(timedelta(minutes=11))
        late = await http.get(callback)
    assert late.status_code == 400 and "longer than ten minutes" in late.text


async def test_the_providers_refusal_and_an_unreachable_provider_are_pages_not_errors(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    async with browser(workspace) as http:
        await to_provider(http)
        cancelled = await http.get(
            "/auth/callback", params={"error": "access_denied", "error_description": "the person cancelled"}
        )
    assert cancelled.status_code == 400
    assert "The identity provider refused the sign-in (access_denied: the person cancelled)" in cancelled.text

    # A token endpoint behind a gateway that answers an HTML error page.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(idp, "exchange", lambda request, form: HTMLResponse("<h1>Bad gateway</h1>", status_code=502))
        async with browser(workspace) as http:
            broken = await http.get(await at_provider(http, idp, await to_provider(http), "colin"))
    assert broken.status_code == 502 and "could not be reached or did not answer as one" in broken.text

    objects = workspace.runtime.objects
    working = objects.sign_in
    nobody = workspace.runtime.settings.model_copy(update={"workspace_oidc_issuer": f"http://127.0.0.1:{free_port()}"})
    objects.sign_in = OidcSignIn(nobody, workspace.runtime.sessions, workspace.runtime.clock)
    try:
        async with browser(workspace) as http:
            down = await http.get("/sign-in", params={"next": "/"})
    finally:
        await objects.sign_in.close()
        objects.sign_in = working
    assert down.status_code == 502 and "could not be reached" in down.text


async def test_sign_out_ends_the_session_here_and_at_the_provider(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    async with browser(workspace) as http:
        await sign_in_as(http, idp, "colin")
        page = await http.get("/")
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        forged = await http.post("/sign-out", data={"csrf_token": "forged"})
        still = await http.get("/")
        out = await http.post("/sign-out", data={"csrf_token": csrf})
        at_idp = urlsplit(out.headers["location"])
        back = await http.get(out.headers["location"])
        signed_out = await http.get(back.headers["location"])
        after = await http.get("/")
    assert forged.status_code == 403 and still.status_code == 200
    assert out.status_code == 303 and f"{at_idp.scheme}://{at_idp.netloc}{at_idp.path}" == f"{idp.issuer}/end-session"
    query = parse_qs(at_idp.query)
    assert query["post_logout_redirect_uri"] == [f"{workspace.base_url}/signed-out"] and query["id_token_hint"]
    assert back.headers["location"] == f"{workspace.base_url}/signed-out"
    assert signed_out.status_code == 200 and "You are signed out of the workspace." in signed_out.text
    assert after.status_code == 303 and after.headers["location"].startswith("/sign-in")


async def test_an_expired_session_signs_in_again_and_comes_back_to_the_same_page(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    clock = workspace.runtime.clock
    assert isinstance(clock, SimulatedClock)
    async with browser(workspace) as http:
        await sign_in_as(http, idp, "adam")
        assert (await http.get("/", params={"segment": "demo"})).status_code == 200
        clock.advance(timedelta(minutes=31))
        expired = await http.get("/", params={"segment": "demo"})
        assert expired.status_code == 303
        sign_in_url = urlsplit(expired.headers["location"])
        assert sign_in_url.path == "/sign-in"
        params = await to_provider(http, parse_qs(sign_in_url.query)["next"][0])
        done = await http.get(await at_provider(http, idp, params, "adam"))
        assert done.headers["location"] == "/?segment=demo"
        page = await http.get(done.headers["location"])
    assert page.status_code == 200 and "Signed in as Adam Admin (admin)" in page.text


async def test_sign_in_goes_only_to_pages_of_this_site_and_skips_the_provider_when_signed_in(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    async with browser(workspace) as http:
        done = await sign_in_as(http, idp, "vera", next_path="https://evil.example/")
        again = await http.get("/sign-in", params={"next": "/?currency=GBP"})
    assert done.headers["location"] == "/"
    assert (again.status_code, again.headers["location"]) == (303, "/?currency=GBP")


async def test_an_id_token_from_another_key_issuer_audience_or_time_is_refused(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    flow = workspace.runtime.objects.sign_in
    colin = next(p for p in seeded() if p.username == "colin")
    now = workspace.runtime.clock.now()
    code = IssuedCode("workspace", f"{workspace.base_url}/auth/callback", colin, "n-1", "x", now)
    impostor = DevIdentityProvider(idp.issuer, [], [], workspace.runtime.clock)  # same issuer, its own key...
    forger = DevIdentityProvider(idp.issuer, [], [], workspace.runtime.clock)
    forger.key = RSAKey.generate_key(2048, parameters={"kid": idp.key.kid, "alg": "RS256"})  # ...even its kid
    elsewhere = DevIdentityProvider("http://127.0.0.1:1", [], [], workspace.runtime.clock)
    elsewhere.key = idp.key
    assert (await flow._verified(idp.id_token(code, "at"), nonce="n-1", access_token="at"))["sub"] == "dev-colin"
    refused: list[str] = []
    for token in (
        impostor.id_token(code, "at"),
        forger.id_token(code, "at"),
        elsewhere.id_token(code, "at"),
        idp.id_token(replace(code, client_id="another-client"), "at"),
        idp.id_token(code, "another-access-token"),  # at_hash does not match the access token received
    ):
        with pytest.raises(SignInFailed) as failed:
            await flow._verified(token, nonce="n-1", access_token="at")
        refused.append(failed.value.values["problem"])
    stale = idp.id_token(code, "at")
    clock = workspace.runtime.clock
    assert isinstance(clock, SimulatedClock)
    clock.advance(timedelta(minutes=7))
    with pytest.raises(SignInFailed):
        await flow._verified(stale, nonce="n-1", access_token="at")
    assert refused == [
        "InvalidKeyIdError",
        "BadSignatureError",
        "InvalidClaimError",
        "InvalidClaimError",
        "InvalidClaimError",
    ]


# ---------------------------------------------------------------------- the rules, without HTTP

RULES = IdentityRules("roles", parse_role_map("Ann@acme.test=admin"), "tenant", "")


@pytest.mark.parametrize(
    ("claims", "role"),
    [
        ({"roles": ["viewer", "collector", "finance"]}, Role.collector),
        ({"roles": "viewer manager"}, Role.manager),
        ({"roles": ["viewer"], "email": "ann@acme.test"}, Role.admin),
        ({"email": "ann@acme.test", "email_verified": True}, Role.admin),
    ],
)
def test_the_role_is_the_highest_of_the_claim_and_the_table(claims: dict[str, Any], role: Role) -> None:
    assert person_from_claims({"sub": "s", "tenant": "acme", **claims}, RULES).role is role


def test_the_table_is_ignored_for_an_address_the_provider_says_is_unverified() -> None:
    with pytest.raises(IdentityRefused) as refused:
        person_from_claims({"sub": "s", "tenant": "acme", "email": "ann@acme.test", "email_verified": False}, RULES)
    assert refused.value.reason == "sign_in.refused.no_role"


def test_the_default_tenant_serves_a_token_without_the_tenant_claim() -> None:
    person = person_from_claims({"sub": "s", "roles": ["viewer"]}, replace(RULES, default_tenant="acme"))
    assert person.tenant_id == "acme" and person.name == "s"


def test_a_role_table_naming_no_role_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="expected email=role"):
        Settings(workspace_role_map="ann@acme.test=boss")
    assert parse_role_map(" a@x.test=viewer , B@x.test = admin ") == {"a@x.test": Role.viewer, "b@x.test": Role.admin}


# ---------------------------------------------------------------------- in a real browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.mark.browser
@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"chromium is not installed at {CHROMIUM}")
async def test_a_collector_signs_in_through_the_form_in_chromium_without_javascript(
    workspace: RunningService, idp: DevIdentityProvider
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await chromium.new_context(java_script_enabled=False, locale="en-GB")
            page = await context.new_page()
            await page.goto(f"{workspace.base_url}/?{urlencode({'currency': 'EUR'})}")
            assert page.url.startswith(f"{idp.issuer}/authorize?")
            assert await page.locator("h1").inner_text() == "Signing in to workspace"
            for control in await page.locator("input:not([type=hidden])").all():
                assert await control.evaluate("el => el.labels.length") == 1
            await page.get_by_label("Username").fill("colin")
            await page.get_by_label("Password").fill("wrong")
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_load_state()
            assert await page.locator("#password-error").inner_text() == "Username or password is wrong."
            assert await page.get_by_label("Username").input_value() == "colin"
            await page.get_by_label("Password").fill("colin-dev")
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_load_state()
            assert page.url == f"{workspace.base_url}/?currency=EUR"
            assert "Signed in as Colin Collector (collector)" in await page.locator("header").inner_text()
            [cookie] = [c for c in await context.cookies() if c["name"] == cookie_name(False)]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        finally:
            await chromium.close()
