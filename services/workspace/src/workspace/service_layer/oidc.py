"""Signing staff in with OpenID Connect: the authorization code flow with PKCE (S256), for any provider that
publishes /.well-known/openid-configuration (Keycloak, Entra ID, Okta, `python -m workspace.dev_idp`).

Guarantees:
- A sign-in under way is a row of `sign_ins` (state, nonce, PKCE verifier, the page to return to). The callback
  takes it out in one statement, so a state (and with it a code) completes at most one sign-in; a row older than
  ten minutes completes none. The browser must also carry the state in a cookie of its own (entrypoints/sign_in.py):
  a callback link made in someone else's browser signs nobody in.
- The ID token is verified against the provider's JWKS (fetched once; fetched again when a token names a key it
  does not hold: rotation): signature with an asymmetric algorithm the provider announces, then with authlib's
  `CodeIDToken` its iss (the configured issuer), aud (our client id), exp and iat (at the injected clock's time),
  nonce (the one stored with the state), azp and at_hash.
- Every way this can go wrong ends in `SignInFailed` (a UI text key and an HTTP status) or, for a genuine token
  the workspace will not serve, `IdentityRefused`: the page says why, and no session is opened.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_kit.clock import Clock
from workspace.adapters.orm import sign_ins
from workspace.adapters.platform import parse_tenant_keys
from workspace.domain.identity import IdentityRefused, IdentityRules, parse_role_map, person_from_claims
from workspace.domain.people import Person
from workspace.settings import Settings

SIGN_IN_LIFETIME = timedelta(minutes=10)
CLOCK_LEEWAY_S = 60  # the provider's clock and ours may differ by this much (exp, iat)
SYMMETRIC_OR_NONE = ("none", "HS256", "HS384", "HS512")  # never accepted: a client secret would sign tokens


class SignInFailed(Exception):
    """The sign-in could not be completed (`reason`: a UI text key; `status`: the page's HTTP status)."""

    def __init__(self, reason: str, status: int = 400, **values: str) -> None:
        super().__init__(reason, values)
        self.reason = reason
        self.status = status
        self.values = values


@dataclass(frozen=True)
class SignInCompleted:
    person: Person
    id_token: str
    next_path: str


class OidcSignIn:
    """One per process: the provider's metadata and keys, cached; the sign-ins under way, in the database."""

    def __init__(self, settings: Settings, db: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self._http = httpx.AsyncClient(timeout=settings.workspace_call_timeout_s)
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    @property
    def issuer(self) -> str:
        return self.settings.workspace_oidc_issuer.rstrip("/")

    @property
    def redirect_uri(self) -> str:
        return self.settings.workspace_public_url.rstrip("/") + "/auth/callback"

    @property
    def signed_out_uri(self) -> str:
        return self.settings.workspace_public_url.rstrip("/") + "/signed-out"

    def rules(self) -> IdentityRules:
        s = self.settings
        return IdentityRules(
            roles_claim=s.workspace_roles_claim, role_map=parse_role_map(s.workspace_role_map),
            tenant_claim=s.workspace_tenant_claim, default_tenant=s.workspace_default_tenant.strip(),
        )  # fmt: skip

    async def close(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ the provider

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            answer = await self._http.get(url)
            answer.raise_for_status()
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInFailed("sign_in.failed.unreachable", 502, issuer=self.issuer) from exc
        if not isinstance(body, dict):
            raise SignInFailed("sign_in.failed.unreachable", 502, issuer=self.issuer)
        return body

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (read once per process; a failed read is tried again next time)."""
        if self._metadata is None:
            found = await self._get_json(self.issuer + "/.well-known/openid-configuration")
            # OIDC Discovery 1.0 section 4.3: the document must name the issuer it was fetched for.
            needed = ("authorization_endpoint", "token_endpoint", "jwks_uri")
            if str(found.get("issuer", "")).rstrip("/") != self.issuer or not all(found.get(k) for k in needed):
                raise SignInFailed("sign_in.failed.unreachable", 502, issuer=self.issuer)
            self._metadata = found
        return self._metadata

    async def _key_set(self, *, fresh: bool = False) -> KeySet:
        if self._keys is None or fresh:
            jwks: Any = await self._get_json(str((await self.metadata())["jwks_uri"]))  # checked by the import
            try:
                self._keys = KeySet.import_key_set(jwks)
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise SignInFailed("sign_in.failed.unreachable", 502, issuer=self.issuer) from exc
        return self._keys

    def _client(self, metadata: dict[str, Any]) -> AsyncOAuth2Client:
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        s = self.settings
        return AsyncOAuth2Client(
            client_id=s.workspace_oidc_client_id, client_secret=s.workspace_oidc_client_secret,
            token_endpoint_auth_method=method, scope=s.workspace_oidc_scopes, redirect_uri=self.redirect_uri,
            code_challenge_method="S256", timeout=s.workspace_call_timeout_s,
        )  # fmt: skip

    # ------------------------------------------------------------------ the flow

    async def begin(self, next_path: str) -> tuple[str, str]:
        """Where to send the browser (the provider's authorization URL), and the state the browser must keep."""
        metadata = await self.metadata()
        now = self.clock.now()
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), generate_token(64)
        async with self.db() as db, db.begin():
            # Abandoned sign-ins go as new ones come: the table holds at most ten minutes of them.
            await db.execute(delete(sign_ins).where(sign_ins.c.created_at < now - SIGN_IN_LIFETIME))
            await db.execute(
                sign_ins.insert().values(
                    state=state, nonce=nonce, code_verifier=verifier, next_path=next_path, created_at=now
                )
            )
        client = self._client(metadata)
        try:
            url, _ = client.create_authorization_url(
                str(metadata["authorization_endpoint"]), state=state, code_verifier=verifier, nonce=nonce
            )
        finally:
            await client.aclose()
        return str(url), state

    async def complete(self, state: str, code: str, browser_state: str) -> SignInCompleted:
        """The person the provider signed in, once code, state, PKCE verifier, token and nonce all agree."""
        if not state or not browser_state or not hmac.compare_digest(state.encode(), browser_state.encode()):
            raise SignInFailed("sign_in.failed.state")
        async with self.db() as db, db.begin():
            row = (await db.execute(delete(sign_ins).where(sign_ins.c.state == state).returning(sign_ins))).first()
        if row is None:
            raise SignInFailed("sign_in.failed.state")
        if self.clock.now() - row.created_at > SIGN_IN_LIFETIME:
            raise SignInFailed("sign_in.failed.expired")
        if not code:
            raise SignInFailed("sign_in.failed.state")
        metadata = await self.metadata()
        async with self._client(metadata) as client:
            try:
                token = await client.fetch_token(
                    str(metadata["token_endpoint"]), grant_type="authorization_code", code=code,
                    code_verifier=row.code_verifier,
                )  # fmt: skip
            except OAuthError as exc:
                raise SignInFailed("sign_in.failed.provider", error=str(exc.error or "error")) from exc
            except (httpx.HTTPError, ValueError) as exc:
                raise SignInFailed("sign_in.failed.unreachable", 502, issuer=self.issuer) from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SignInFailed("sign_in.failed.token", problem="no id_token")
        claims = await self._verified(id_token, nonce=row.nonce, access_token=token.get("access_token"))
        person = person_from_claims(claims, self.rules())
        if person.tenant_id not in parse_tenant_keys(self.settings.workspace_api_keys):
            raise IdentityRefused("sign_in.refused.unknown_tenant", name=person.name, tenant=person.tenant_id)
        return SignInCompleted(person, id_token, row.next_path)

    async def _verified(self, id_token: str, *, nonce: str, access_token: Any) -> dict[str, Any]:
        metadata = await self.metadata()
        announced = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in announced if isinstance(a, str) and a not in SYMMETRIC_OR_NONE] or ["RS256"]
        try:
            try:
                decoded = jwt.decode(id_token, await self._key_set(), algorithms=algorithms)
            except InvalidKeyIdError:
                decoded = jwt.decode(id_token, await self._key_set(fresh=True), algorithms=algorithms)
            client_id = self.settings.workspace_oidc_client_id
            claims = CodeIDToken(
                decoded.claims, decoded.header,
                {"iss": {"essential": True, "value": str(metadata["issuer"])},
                 "aud": {"essential": True, "value": client_id}},
                {"nonce": nonce, "client_id": client_id,
                 **({"access_token": access_token} if isinstance(access_token, str) else {})},
            )  # fmt: skip
            claims.validate(now=int(self.clock.now().timestamp()), leeway=CLOCK_LEEWAY_S)
        except (JoseError, ValueError, TypeError) as exc:
            raise SignInFailed("sign_in.failed.token", problem=type(exc).__name__) from exc
        return dict(claims)

    async def sign_out_url(self, id_token: str | None) -> str | None:
        """The provider's end-session URL (RP-initiated logout) back to our signed-out page, if it has one."""
        try:
            metadata = await self.metadata()
        except SignInFailed:
            return None  # our session is over either way; the provider's may outlive it
        endpoint = metadata.get("end_session_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            return None
        params = {"client_id": self.settings.workspace_oidc_client_id, "post_logout_redirect_uri": self.signed_out_uri}
        if id_token:
            params["id_token_hint"] = id_token
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)
