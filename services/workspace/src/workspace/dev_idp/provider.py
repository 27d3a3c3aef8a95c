"""The development identity provider's endpoints, as an OpenID Connect provider answers them on the wire.

- Discovery (/.well-known/openid-configuration) and JWKS (/jwks): one RS256 key, made at start.
- /authorize: the code flow only, PKCE S256 required; a client or redirect URI it does not know gets an error
  page (never a redirect to it); other bad requests go back to the client as `error=`. The sign-in form labels
  its fields and puts each error next to its field, keeping the username typed.
- /token: client_secret_basic or client_secret_post; a code works once (a second use, or one with the wrong
  PKCE verifier or redirect URI, is `invalid_grant` and burns it) and for five minutes; the ID token carries
  nonce, at_hash and the person's `roles` and `tenant`.
- /userinfo (Bearer access token) and /end-session (back to a registered post-logout URI).

The provider keeps no sign-in session of its own: every /authorize shows the form. Time is the injected clock,
so tests that move the workspace's clock move the tokens' too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from dunning_kit.clock import Clock
from workspace.dev_idp.users import DevPerson
from workspace.entrypoints.web import STATIC_DIR, Translator, language_of, render

CODE_LIFETIME = timedelta(minutes=5)
TOKEN_LIFETIME = timedelta(minutes=5)
AUTHORIZE_PARAMS = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
                    "code_challenge_method")  # fmt: skip


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]

    @classmethod
    def for_workspace(cls, client_id: str, client_secret: str, workspace_url: str) -> RegisteredClient:
        base = workspace_url.rstrip("/")
        return cls(client_id, client_secret, (f"{base}/auth/callback",), (f"{base}/signed-out",))


@dataclass(frozen=True)
class IssuedCode:
    client_id: str
    redirect_uri: str
    person: DevPerson
    nonce: str | None
    code_challenge: str
    issued_at: datetime


def s256(verifier: str) -> str:
    """RFC 7636 section 4.2: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def _half_hash(token: str) -> str:
    """OIDC Core 3.1.3.6 at_hash for RS256: the left half of SHA-256 of the access token, base64url."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def _token_error(error: str, description: str, status: int = 400) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="dev-idp"'
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


class DevIdentityProvider:
    def __init__(
        self, issuer: str, clients: Iterable[RegisteredClient], people: Iterable[DevPerson], clock: Clock
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.clients = {c.client_id: c for c in clients}
        self.people = {p.username: p for p in people}
        self.clock = clock
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"})
        self.codes: dict[str, IssuedCode] = {}
        self.access_tokens: dict[str, tuple[DevPerson, datetime]] = {}
        self.app = self._build()

    # ------------------------------------------------------------------ what the endpoints decide

    def _client_and_redirect(self, params: dict[str, str]) -> RegisteredClient | None:
        client = self.clients.get(params.get("client_id", ""))
        if client is None or params.get("redirect_uri") not in client.redirect_uris:
            return None
        return client

    def _request_problem(self, params: dict[str, str]) -> tuple[str, str] | None:
        """What is wrong with an authorization request the client may hear about (RFC 6749 4.1.2.1)."""
        if params.get("response_type") != "code":
            return "unsupported_response_type", "only response_type=code (the authorization code flow)"
        if "openid" not in params.get("scope", "").split():
            return "invalid_scope", "the scope must include openid"
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            return "invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256"
        return None

    def _back_to_client(self, params: dict[str, str], **answer: str) -> RedirectResponse:
        if params.get("state"):
            answer["state"] = params["state"]
        return RedirectResponse(f"{params['redirect_uri']}?{urlencode(answer)}", status_code=303)

    def _authenticate_client(self, request: Request, form: dict[str, str]) -> RegisteredClient | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
            # RFC 6749 2.3.1: id and secret are form-encoded before they are joined and base64-encoded
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        client = self.clients.get(client_id)
        if client is None or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            return None
        return client

    def _forget_expired(self) -> None:
        """Codes nobody exchanged and tokens past their time go as new ones come (the provider lives in memory)."""
        now = self.clock.now()
        self.codes = {k: c for k, c in self.codes.items() if now - c.issued_at <= CODE_LIFETIME}
        self.access_tokens = {k: v for k, v in self.access_tokens.items() if now < v[1]}

    def id_token(self, code: IssuedCode, access_token: str) -> str:
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            **code.person.claims(), "iss": self.issuer, "aud": code.client_id, "azp": code.client_id, "iat": now,
            "auth_time": int(code.issued_at.timestamp()), "exp": now + int(TOKEN_LIFETIME.total_seconds()),
            "at_hash": _half_hash(access_token),
        }  # fmt: skip
        if code.nonce:
            claims["nonce"] = code.nonce
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)

    def exchange(self, request: Request, form: dict[str, str]) -> JSONResponse:
        client = self._authenticate_client(request, form)
        if client is None:
            return _token_error("invalid_client", "unknown client or wrong secret", 401)
        if form.get("grant_type") != "authorization_code":
            return _token_error("unsupported_grant_type", "only authorization_code")
        code = self.codes.pop(form.get("code", ""), None)  # popped first: a code is burnt by any attempt
        if code is None:
            return _token_error("invalid_grant", "unknown or already used code")
        if code.client_id != client.client_id or code.redirect_uri != form.get("redirect_uri"):
            return _token_error("invalid_grant", "code issued to another client or redirect_uri")
        if self.clock.now() - code.issued_at > CODE_LIFETIME:
            return _token_error("invalid_grant", "code expired")
        verifier = form.get("code_verifier", "")
        if not verifier or not hmac.compare_digest(s256(verifier), code.code_challenge):
            return _token_error("invalid_grant", "PKCE code_verifier does not match the code_challenge")
        access_token = secrets.token_urlsafe(32)
        self.access_tokens[access_token] = (code.person, self.clock.now() + TOKEN_LIFETIME)
        body = {
            "access_token": access_token, "token_type": "Bearer", "expires_in": int(TOKEN_LIFETIME.total_seconds()),
            "scope": "openid profile email", "id_token": self.id_token(code, access_token),
        }  # fmt: skip
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    # ------------------------------------------------------------------ the web app

    def _build(self) -> FastAPI:
        app = FastAPI(title="development identity provider", docs_url=None, redoc_url=None, openapi_url=None)
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            i = self.issuer
            return {
                "issuer": i, "authorization_endpoint": f"{i}/authorize", "token_endpoint": f"{i}/token",
                "userinfo_endpoint": f"{i}/userinfo", "jwks_uri": f"{i}/jwks", "end_session_endpoint": f"{i}/end-session",
                "response_types_supported": ["code"], "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email"], "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "claims_supported": ["sub", "name", "preferred_username", "email", "email_verified", "roles", "tenant"],
            }  # fmt: skip

        @app.get("/jwks")
        async def jwks() -> dict[str, Any]:
            return dict(KeySet([self.key]).as_dict(private=False))

        @app.get("/authorize", response_class=HTMLResponse)
        async def authorize(request: Request) -> Response:
            params = {k: v for k, v in request.query_params.items() if k in AUTHORIZE_PARAMS}
            return self._authorize(request, params, None)

        @app.post("/authorize", response_class=HTMLResponse)
        async def sign_in(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            params = {k: v for k, v in form.items() if k in AUTHORIZE_PARAMS}
            return self._authorize(request, params, form)

        @app.post("/token")
        async def token(request: Request) -> JSONResponse:
            form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            return self.exchange(request, form)

        @app.api_route("/userinfo", methods=["GET", "POST"])
        async def userinfo(request: Request) -> JSONResponse:
            header = request.headers.get("authorization", "")
            found = self.access_tokens.get(header[7:]) if header.lower().startswith("bearer ") else None
            if found is None or self.clock.now() >= found[1]:
                return JSONResponse(
                    {"error": "invalid_token"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            return JSONResponse(found[0].claims(), headers={"Cache-Control": "no-store"})

        @app.get("/end-session", response_class=HTMLResponse)
        async def end_session(request: Request, post_logout_redirect_uri: str = "", state: str = "") -> Response:
            known = {uri for c in self.clients.values() for uri in c.post_logout_redirect_uris}
            if post_logout_redirect_uri in known:
                target = post_logout_redirect_uri + (f"?{urlencode({'state': state})}" if state else "")
                return RedirectResponse(target, status_code=303)
            t = Translator(language_of(request))
            return render(request, "idp_message.html", title=t("signed_out.title"), message=t("idp.signed_out"))

        return app

    def _authorize(self, request: Request, params: dict[str, str], form: dict[str, str] | None) -> Response:
        t = Translator(language_of(request))
        client = self._client_and_redirect(params)
        if client is None:  # never redirect to an address the client did not register
            return render(request, "idp_message.html", 400, title=t("idp.error.title"), message=t("idp.error.client"))
        problem = self._request_problem(params)
        if problem is not None:
            return self._back_to_client(params, error=problem[0], error_description=problem[1])
        errors: dict[str, str] = {}
        username = ""
        if form is not None:
            username = form.get("username", "").strip()
            password = form.get("password", "")
            if not username:
                errors["username"] = t("idp.error.username")
            if not password:
                errors["password"] = t("idp.error.password")
            person = self.people.get(username)
            if not errors and (person is None or not hmac.compare_digest(password.encode(), person.password.encode())):
                errors["password"] = t("idp.error.unknown")
            if not errors and person is not None:
                self._forget_expired()
                code = secrets.token_urlsafe(32)
                self.codes[code] = IssuedCode(
                    client.client_id, params["redirect_uri"], person, params.get("nonce") or None,
                    params["code_challenge"], self.clock.now(),
                )  # fmt: skip
                return self._back_to_client(params, code=code)
        return render(
            request, "idp_sign_in.html", 422 if errors else 200, params=params, errors=errors, username=username,
            client_id=client.client_id,
        )  # fmt: skip
