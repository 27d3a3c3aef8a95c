"""Who acted: the signed on-behalf-of header (`Dunning-Actor`) the workspace adds to its calls, and its check.

The workspace calls the services with its tenant's API key; the key says *which tenant* may act, not *which
person* did. So with each call it sends a short-lived token naming the signed-in person, signed with its
Ed25519 key (WORKSPACE_ACTOR_SIGNING_KEY); every service verifies it with the public keys in ACTOR_VERIFY_KEYS
(several during a rotation) before the route runs:

* no header -> the API key alone acts (machine callers: ERPs, scripts), as before;
* a header that does not verify (bad signature, malformed, unknown key), has expired, lives longer than
  MAX_LIFETIME, or names another tenant than the API key's -> 401 problem naming `Dunning-Actor`, and the
  route does not run: nothing is written, no Idempotency-Key is claimed;
* a valid header -> the route runs with the person known (`Acting` dependency, `current_request()`), and what
  the call changes is written to the service's audit log with the person (dunning_kit.audit_log).

The token is a JWT (RFC 7519) signed with EdDSA (RFC 8037): `base64url(header).base64url(claims).base64url(sig)`
with the claims {sub, name, email, role, tenant, iat, exp}; any JWT library can read it. Keys travel as the
base64url of their 32 raw bytes; `python -m dunning_kit.actor` prints a new pair.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dunning_events.acting import EventActor, person_acting
from dunning_kit.app_routes import ApiRoute, api_routes
from dunning_kit.auth import ApiKeyRegistry
from dunning_kit.problems import ProblemResponse

if TYPE_CHECKING:
    from fastapi import FastAPI

    from dunning_kit.runtime import ServiceRuntime

HEADER = "Dunning-Actor"
MAX_LIFETIME = timedelta(minutes=5)
# Clocks of the workspace and a service may differ a little; a token "issued in the future" by more is refused.
CLOCK_SKEW = timedelta(seconds=30)
PROBLEM_TYPE = "urn:dunning:problem:invalid-actor"
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JWT_HEADER = {"alg": "EdDSA", "typ": "JWT"}


@dataclass(frozen=True)
class Actor:
    """The person a call is made for, as the workspace signed them in."""

    sub: str  # the identity provider's subject: stable, the key the audit filters by
    name: str
    email: str
    role: str
    tenant: str

    def as_detail(self) -> dict[str, str]:
        """How a timeline entry or a version names its author."""
        return {"sub": self.sub, "name": self.name}


class ActorRefused(Exception):
    """The header is present but may not be trusted; the reason is safe to show the caller."""


# ------------------------------------------------------------------------------------------------- keys


def _b64decode(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def signing_key(text: str) -> Ed25519PrivateKey:
    """A private key from the base64url of its 32 raw bytes (ValueError if it is not one)."""
    try:
        raw = _b64decode(text)
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if len(raw) != 32:
        raise ValueError("an Ed25519 private key is 32 bytes (base64url)")
    return Ed25519PrivateKey.from_private_bytes(raw)


def verify_keys(text: str) -> list[Ed25519PublicKey]:
    """Public keys, comma-separated base64url of 32 raw bytes each (ValueError naming the bad entry)."""
    keys: list[Ed25519PublicKey] = []
    for n, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            continue
        try:
            raw = _b64decode(entry)
        except (binascii.Error, ValueError):
            raise ValueError(f"entry {n}: not base64url") from None
        if len(raw) != 32:
            raise ValueError(f"entry {n}: an Ed25519 public key is 32 bytes (base64url)")
        keys.append(Ed25519PublicKey.from_public_bytes(raw))
    return keys


def public_key_of(private: str) -> str:
    """The verify key (ACTOR_VERIFY_KEYS entry) of a signing key."""
    raw = signing_key(private).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64encode(raw)


# ------------------------------------------------------------------------------------------------- tokens


def sign(actor: Actor, key: Ed25519PrivateKey, now: datetime, lifetime: timedelta = MAX_LIFETIME) -> str:
    """The header value naming `actor`, valid from `now` for `lifetime` (at most MAX_LIFETIME)."""
    if lifetime > MAX_LIFETIME:
        raise ValueError(f"an actor token lives at most {MAX_LIFETIME}")
    iat = int(now.timestamp())
    claims = {"sub": actor.sub, "name": actor.name, "email": actor.email, "role": actor.role,
              "tenant": actor.tenant, "iat": iat, "exp": iat + int(lifetime.total_seconds())}  # fmt: skip
    head = _b64encode(json.dumps(_JWT_HEADER, separators=(",", ":")).encode())
    body = _b64encode(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    signature = key.sign(f"{head}.{body}".encode())
    return f"{head}.{body}.{_b64encode(signature)}"


def verify(token: str, keys: list[Ed25519PublicKey], now: datetime, tenant: str) -> Actor:
    """The person `token` names, if one of `keys` signed it, it is valid at `now` and names `tenant`."""
    if not keys:
        raise ActorRefused("this service trusts no actor key (ACTOR_VERIFY_KEYS is empty)")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ActorRefused("not a signed token (header.claims.signature)")
    try:
        head = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (binascii.Error, ValueError):
        raise ActorRefused("not a signed token (header.claims.signature)") from None
    if not isinstance(head, dict) or head.get("alg") != "EdDSA":
        raise ActorRefused("the token must be signed with EdDSA (Ed25519)")
    signed = f"{parts[0]}.{parts[1]}".encode()
    if not any(_signed_by(k, signature, signed) for k in keys):
        raise ActorRefused("the signature does not verify with any key in ACTOR_VERIFY_KEYS")
    if not isinstance(claims, dict):
        raise ActorRefused("the claims are not an object")
    texts = {k: claims.get(k) for k in ("sub", "name", "email", "role", "tenant")}
    missing = [k for k, v in texts.items() if not isinstance(v, str) or not v.strip()]
    times = {k: claims.get(k) for k in ("iat", "exp")}
    missing += [k for k, v in times.items() if not isinstance(v, int) or isinstance(v, bool)]
    if missing:
        raise ActorRefused(f"claims missing or not valid: {', '.join(missing)}")
    issued = datetime.fromtimestamp(claims["iat"], UTC)
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    if expires - issued > MAX_LIFETIME:
        raise ActorRefused(f"the token lives longer than {int(MAX_LIFETIME.total_seconds())} s")
    if issued > now + CLOCK_SKEW:
        raise ActorRefused("the token was issued in the future")
    if expires <= now:
        raise ActorRefused("the token has expired")
    if claims["tenant"] != tenant:
        raise ActorRefused("the token names another tenant than the API key")
    return Actor(sub=claims["sub"], name=claims["name"], email=claims["email"], role=claims["role"],
                 tenant=claims["tenant"])  # fmt: skip


def _signed_by(key: Ed25519PublicKey, signature: bytes, signed: bytes) -> bool:
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return False
    return True


# ------------------------------------------------------------------------------------------------- requests


@dataclass
class ActingRequest:
    """A call made for a person: what the audit log records about it (dunning_kit.audit_log)."""

    service: str
    actor: Actor
    tenant_id: str
    method: str
    path: str
    route: str  # the path template, e.g. /v1/customers/{customer_id}/dunning-block
    targets: dict[str, str]  # the path's ids, e.g. {"customer_id": "C-1"}
    at: datetime
    recorded: bool = False  # its audit row was written in the transaction of the change
    replay: bool = False  # an Idempotency-Key's stored answer: the first call made the change and was recorded
    status: int = field(default=0)

    @property
    def changes_state(self) -> bool:
        return self.method in CHANGING_METHODS


_acting: ContextVar[ActingRequest | None] = ContextVar("dunning_acting_request", default=None)


def current_request() -> ActingRequest | None:
    """The call being served, when it was made for a person (None for a machine caller or outside a request)."""
    return _acting.get()


def replaying() -> None:
    """The call being served answers from an Idempotency-Key's stored answer (dunning_kit.idempotency.claim): it
    changes nothing, whatever its transaction commits."""
    acting = _acting.get()
    if acting is not None:
        acting.replay = True


def _acting_person() -> Actor | None:
    acting = _acting.get()
    return acting.actor if acting is not None else None


# A route's parameter: the person the call is made for, or None (an API key alone).
Acting = Annotated[Actor | None, Depends(_acting_person)]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _presented_key(scope: Scope) -> str | None:
    authorization = _header(scope, b"authorization") or ""
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return _header(scope, b"x-api-key")


def refusal(reason: str) -> ProblemResponse:
    return ProblemResponse(
        {"type": PROBLEM_TYPE, "title": "Unauthorized", "status": 401, "detail": f"{HEADER}: {reason}",
         "errors": [{"field": HEADER, "reason": reason, "location": "header"}]},
        status_code=401,
    )  # fmt: skip


class ActorCheck:
    """ASGI middleware: verifies `Dunning-Actor` before the route runs and keeps the person for the request
    (see the module docstring); the audit log records a call that changed nothing in a transaction of its own
    before its answer leaves (a refusal, dunning_kit.audit_log). Requests without a valid API key pass on: the route answers 401."""

    def __init__(self, app: ASGIApp, keys: list[Ed25519PublicKey]) -> None:
        self.app = app
        self.keys = keys
        self._routes: list[tuple[ApiRoute, re.Pattern[str]]] | None = None

    def _route_of(self, scope: Scope) -> tuple[str, dict[str, str]]:
        """The path template the request matches and the ids in its path (what the audit log names)."""
        if self._routes is None:  # every route is declared by the first request
            fastapi: FastAPI = scope["app"]
            self._routes = [(r, compile_path(r.path)[0]) for r in api_routes(fastapi)]
        for route, pattern in self._routes:
            if scope["method"] in route.methods and (found := pattern.match(scope["path"])) is not None:
                return route.path, {k: str(v) for k, v in found.groupdict().items()}
        return scope["path"], {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _header(scope, HEADER.lower().encode()) if scope["type"] == "http" else None
        if token is None:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        registry: ApiKeyRegistry = state.api_keys
        presented = _presented_key(scope)
        principal = registry.authenticate(presented) if presented else None
        if principal is None:
            await self.app(scope, receive, send)  # the route answers the 401 of the key
            return
        runtime: ServiceRuntime = state.runtime
        now = runtime.clock.now()
        try:
            actor = verify(token, self.keys, now, principal.tenant_id)
        except ActorRefused as exc:
            await refusal(str(exc))(scope, receive, send)
            return
        route, targets = self._route_of(scope)
        acting = ActingRequest(service=runtime.name, actor=actor, tenant_id=principal.tenant_id,
                               method=scope["method"], path=scope["path"], route=route, targets=targets, at=now)  # fmt: skip

        audit = getattr(state, "audit_log", None)

        async def seen(message: Message) -> None:
            if message["type"] == "http.response.start":
                acting.status = int(message["status"])
                if dict(message.get("headers") or ()).get(b"idempotent-replayed") is not None:
                    acting.replay = True
                if audit is not None and acting.status >= 400:
                    await audit.record_unchanged(acting)  # before the answer, which a reader of the log may follow
            await send(message)

        answered = False
        reset = _acting.set(acting)
        try:
            with person_acting(EventActor(sub=actor.sub[:255], name=actor.name[:300] or actor.sub[:300])):
                await self.app(scope, receive, seen)  # the events it writes name the person (dunning_events.acting)
            answered = True
        except Exception:
            acting.status = acting.status or 500  # the kit's outer handler answers it as a 500 problem
            answered = True
            raise
        finally:
            _acting.reset(reset)  # the record below commits on its own, outside the request's audit
            if answered and audit is not None:
                await audit.record_unchanged(acting)  # a 500 raised through the route (a refusal is recorded)


def keys_for(settings: Any) -> list[Ed25519PublicKey]:
    """The keys a service trusts: ACTOR_VERIFY_KEYS; in DEV_MODE an empty setting trusts the shipped development
    key (the workspace's default signing key), so `make up` and the tests need no setup. Outside DEV_MODE the
    development key is refused at start (dunning_kit.dev_secrets)."""
    from dunning_kit.dev_secrets import DEV_ACTOR_VERIFY_KEY

    text: str = settings.actor_verify_keys
    if not text.strip() and settings.dev_mode:
        text = DEV_ACTOR_VERIFY_KEY
    return verify_keys(text)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print("usage: python -m dunning_kit.actor   (prints a new signing key and its verify key)")
        raise SystemExit(2)
    new = Ed25519PrivateKey.generate()
    private = _b64encode(
        new.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    )
    print(f"WORKSPACE_ACTOR_SIGNING_KEY={private}")
    print(f"ACTOR_VERIFY_KEYS={public_key_of(private)}")
