"""The development identity provider on the wire, as any OIDC client meets it: discovery and keys, the sign-in
form, codes that work once and only with their PKCE verifier, both client authentications, userinfo, end-session,
and `python -m workspace.dev_idp` as `make up` starts it."""

from __future__ import annotations

import asyncio
import base64
import secrets
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from joserfc import jwt
from joserfc.jwk import KeySet

from dunning_kit.clock import SimulatedClock
from dunning_kit.dev_secrets import DEV_OIDC_CLIENT_SECRET, SHIPPED_DEV_VALUES, development_secrets
from dunning_kit.devfakes.asgi_server import AsgiServer
from dunning_kit.embedded import free_port
from dunning_kit.pytest_plugin import SIM_START
from dunning_kit.testing import poll_until
from workspace.dev_idp.provider import DevIdentityProvider, RegisteredClient, s256
from workspace.dev_idp.users import seeded
from workspace.settings import Settings

# One worker holds the module's platform (module-scoped) for all its tests, in file order.
pytestmark = pytest.mark.xdist_group("workspace-dev_idp")

WORKSPACE = "http://127.0.0.1:18006"
CALLBACK = f"{WORKSPACE}/auth/callback"


@pytest.fixture(scope="module")
def clock() -> SimulatedClock:
    return SimulatedClock(SIM_START)


@pytest_asyncio.fixture(scope="module")
async def idp(clock: SimulatedClock) -> AsyncIterator[DevIdentityProvider]:
    server = AsgiServer()  # its port, and so the issuer, is known before the provider is made
    provider = DevIdentityProvider(
        server.base_url,
        [RegisteredClient.for_workspace("workspace", DEV_OIDC_CLIENT_SECRET, WORKSPACE)],
        seeded(),
        clock,
    )
    await server.start(provider.app)
    try:
        yield provider
    finally:
        await server.stop()


def authorize_params(verifier: str, **changes: str) -> dict[str, str]:
    params = {
        "client_id": "workspace", "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid profile email",
        "state": "st-1", "nonce": "n-1", "code_challenge": s256(verifier), "code_challenge_method": "S256",
    }  # fmt: skip
    params.update(changes)
    return params


async def code_for(http: httpx.AsyncClient, idp: DevIdentityProvider, verifier: str, user: str = "colin") -> str:
    password = {p.username: p.password for p in idp.people.values()}[user]
    r = await http.post(
        f"{idp.issuer}/authorize", data={**authorize_params(verifier), "username": user, "password": password}
    )
    assert r.status_code == 303, r.text
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == CALLBACK
    query = parse_qs(target.query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


async def exchange(http: httpx.AsyncClient, idp: DevIdentityProvider, code: str, verifier: str) -> httpx.Response:
    return await http.post(
        f"{idp.issuer}/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": CALLBACK},
        auth=("workspace", DEV_OIDC_CLIENT_SECRET),
    )


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as client:
        yield client


async def test_discovery_names_the_endpoints_and_the_id_token_verifies_with_the_jwks(
    idp: DevIdentityProvider, http: httpx.AsyncClient
) -> None:
    found = (await http.get(f"{idp.issuer}/.well-known/openid-configuration")).json()
    assert found["issuer"] == idp.issuer
    assert found["code_challenge_methods_supported"] == ["S256"]
    assert {"client_secret_basic", "client_secret_post"} <= set(found["token_endpoint_auth_methods_supported"])
    verifier = secrets.token_urlsafe(48)
    answer = await exchange(http, idp, await code_for(http, idp, verifier, "mona"), verifier)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    keys = KeySet.import_key_set((await http.get(found["jwks_uri"])).json())
    claims = jwt.decode(answer.json()["id_token"], keys, algorithms=["RS256"]).claims
    assert (claims["iss"], claims["aud"], claims["nonce"], claims["sub"]) == (
        idp.issuer,
        "workspace",
        "n-1",
        "dev-mona",
    )
    assert (claims["name"], claims["email"], claims["roles"], claims["tenant"]) == (
        "Mona Manager", "mona@acme.test", ["manager"], "acme",
    )  # fmt: skip
    userinfo = await http.get(
        found["userinfo_endpoint"], headers={"authorization": f"Bearer {answer.json()['access_token']}"}
    )
    assert userinfo.json()["roles"] == ["manager"]
    assert (await http.get(found["userinfo_endpoint"], headers={"authorization": "Bearer nope"})).status_code == 401


async def test_a_code_works_once_and_only_with_its_verifier(idp: DevIdentityProvider, http: httpx.AsyncClient) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await code_for(http, idp, verifier)
    wrong = await exchange(http, idp, code, secrets.token_urlsafe(48))
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    burnt = await exchange(http, idp, code, verifier)  # a failed attempt burns the code
    assert burnt.json()["error"] == "invalid_grant"

    code = await code_for(http, idp, verifier)
    assert (await exchange(http, idp, code, verifier)).status_code == 200
    reused = await exchange(http, idp, code, verifier)
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")


async def test_a_code_expires_after_five_minutes(
    idp: DevIdentityProvider, http: httpx.AsyncClient, clock: SimulatedClock
) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await code_for(http, idp, verifier)
    clock.advance(timedelta(minutes=6))
    late = await exchange(http, idp, code, verifier)
    assert late.json() == {"error": "invalid_grant", "error_description": "code expired"}


async def test_the_client_authenticates_by_basic_or_post_and_a_wrong_secret_is_refused(
    idp: DevIdentityProvider, http: httpx.AsyncClient
) -> None:
    verifier = secrets.token_urlsafe(48)
    by_post = await http.post(
        f"{idp.issuer}/token",
        data={
            "grant_type": "authorization_code", "code": await code_for(http, idp, verifier), "code_verifier": verifier,
            "redirect_uri": CALLBACK, "client_id": "workspace", "client_secret": DEV_OIDC_CLIENT_SECRET,
        },
    )  # fmt: skip
    assert by_post.status_code == 200 and by_post.json()["token_type"] == "Bearer"
    wrong = await http.post(
        f"{idp.issuer}/token",
        data={"grant_type": "authorization_code", "code": await code_for(http, idp, verifier), "code_verifier": verifier,
              "redirect_uri": CALLBACK},
        headers={"authorization": "Basic " + base64.b64encode(b"workspace:guess").decode()},
    )  # fmt: skip
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")


async def test_the_form_shows_each_error_next_to_its_field_and_keeps_the_username(
    idp: DevIdentityProvider, http: httpx.AsyncClient
) -> None:
    params = authorize_params(secrets.token_urlsafe(48))
    form = await http.get(f"{idp.issuer}/authorize", params=params)
    assert form.status_code == 200
    assert (
        '<label for="username">Username</label>' in form.text and '<label for="password">Password</label>' in form.text
    )
    assert "default-src 'self'" in form.headers["content-security-policy"]
    wrong = await http.post(f"{idp.issuer}/authorize", data={**params, "username": "colin", "password": "vera-dev"})
    assert wrong.status_code == 422
    assert 'id="password-error">Username or password is wrong.' in wrong.text
    assert 'aria-describedby="password-error"' in wrong.text and 'value="colin"' in wrong.text
    empty = await http.post(f"{idp.issuer}/authorize", data={**params, "username": "", "password": ""})
    assert 'id="username-error">Enter your username.' in empty.text
    assert 'id="password-error">Enter your password.' in empty.text


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"redirect_uri": "https://evil.example/cb"}, 400, None),  # never redirected to
        ({"client_id": "someone"}, 400, None),
        ({"code_challenge_method": "plain"}, 303, "invalid_request"),
        ({"code_challenge": ""}, 303, "invalid_request"),
        ({"scope": "profile"}, 303, "invalid_scope"),
        ({"response_type": "token"}, 303, "unsupported_response_type"),
    ],
)
async def test_a_bad_authorization_request_is_refused(
    idp: DevIdentityProvider, http: httpx.AsyncClient, changes: dict[str, str], status: int, error: str | None
) -> None:
    r = await http.get(f"{idp.issuer}/authorize", params=authorize_params("v" * 43, **changes))
    assert r.status_code == status
    if error is None:
        assert "location" not in r.headers and "a redirect_uri the client did not register" in r.text
    else:
        assert r.headers["location"].startswith(CALLBACK)
        assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == [error]


async def test_end_session_returns_only_to_a_registered_address(
    idp: DevIdentityProvider, http: httpx.AsyncClient
) -> None:
    back = await http.get(f"{idp.issuer}/end-session", params={"post_logout_redirect_uri": f"{WORKSPACE}/signed-out"})
    assert (back.status_code, back.headers["location"]) == (303, f"{WORKSPACE}/signed-out")
    elsewhere = await http.get(
        f"{idp.issuer}/end-session", params={"post_logout_redirect_uri": "https://evil.example/"}
    )
    assert elsewhere.status_code == 200 and "signed out of the development identity provider" in elsewhere.text


def test_the_seeded_people_are_one_per_role_and_their_secrets_are_refused_in_production() -> None:
    people = {p.username: (p.password, p.name, p.email, p.roles, p.tenant) for p in seeded()}
    assert people == {
        "vera": ("vera-dev", "Vera Viewer", "vera@acme.test", ["viewer"], "acme"),
        "colin": ("colin-dev", "Colin Collector", "colin@acme.test", ["collector"], "acme"),
        "mona": ("mona-dev", "Mona Manager", "mona@acme.test", ["manager"], "acme"),
        "adam": ("adam-dev", "Adam Admin", "adam@acme.test", ["admin"], "acme"),
    }
    assert {DEV_OIDC_CLIENT_SECRET, "vera-dev", "colin-dev", "mona-dev", "adam-dev"} <= SHIPPED_DEV_VALUES
    production = Settings(dev_mode=False, workspace_oidc_client_secret=DEV_OIDC_CLIENT_SECRET)
    assert development_secrets(production)["WORKSPACE_OIDC_CLIENT_SECRET"] == "shipped development value"


async def test_python_m_workspace_dev_idp_serves_discovery_and_prints_the_people() -> None:
    for _attempt in range(3):  # the free port may be taken by another worker before the provider binds it
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workspace.dev_idp", "--port", str(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            found = await _discovery_of(proc, port)
        finally:
            if proc.returncode is None:
                proc.terminate()
            printed, _ = await asyncio.wait_for(proc.communicate(), 10)
        if found is not None or b"address already in use" not in printed.lower():
            break
    assert found is not None, printed.decode()
    assert found["issuer"] == f"http://127.0.0.1:{port}"
    assert "colin / colin-dev: collector" in printed.decode()


async def _discovery_of(proc: asyncio.subprocess.Process, port: int) -> dict[str, Any] | None:
    """The provider's discovery document once it serves it; None if the process ended first."""
    async with httpx.AsyncClient(timeout=5) as http:

        async def discovered() -> dict[str, Any] | str | None:
            if proc.returncode is not None:
                return "ended"  # the caller reads why from its output
            try:
                r = await http.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
            except httpx.TransportError:
                return None
            return r.json() if r.status_code == 200 else None

        found = await poll_until(discovered, timeout=30, what="the dev IdP to serve discovery")
    return found if isinstance(found, dict) else None
