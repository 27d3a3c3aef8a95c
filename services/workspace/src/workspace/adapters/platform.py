"""The other services as the workspace reaches them: over their public APIs only, with the tenant's key.

Every call names the person it is made for (`Person`): what the services record about who acted travels with the
call (see `headers_for`). A service that cannot be reached or answers 5xx raises `ServiceUnavailable`, which a
page shows as "this part could not be loaded" while the rest of the page still renders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dunning_kit.actor import HEADER as ACTOR_HEADER
from dunning_kit.actor import Actor, sign
from dunning_kit.clock import Clock
from dunning_kit.settings import parse_pairs
from workspace.domain.people import Person

SERVICES = ("ledger-sync", "policy-engine", "notifier", "promise-tracker", "insights")


# An id put into another service's path: letters, digits and _ . - only, never a dot segment (".."), so a crafted
# id cannot move the call to another route of that service.
_SEGMENT = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def path_segment(value: str) -> str:
    """`value` as one path segment of a call, or ValueError."""
    if not _SEGMENT.match(value) or value in (".", ".."):
        raise ValueError(f"{value!r} cannot name a resource")
    return value


class ServiceUnavailable(Exception):
    """A service did not answer usefully (unreachable, timed out, 5xx)."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


def parse_service_urls(text: str) -> dict[str, str]:
    """`service=http(s)://host:port`, every one of SERVICES named once."""
    urls = parse_pairs(text, "service=http(s)://host:port")
    for name, url in urls.items():
        if name not in SERVICES:
            raise ValueError(f"{name!r} is not one of {', '.join(SERVICES)}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name}: {url!r} is not an http(s) URL")
    missing = [s for s in SERVICES if s not in urls]
    if missing:
        raise ValueError(f"no URL for {', '.join(missing)}")
    return {name: url.rstrip("/") for name, url in urls.items()}


def parse_tenant_keys(text: str) -> dict[str, str]:
    """`tenant=api-key` pairs."""
    return parse_pairs(text, "tenant=api-key")


class PlatformClient:
    """One connection pool to the five services, shared by every request of the workspace."""

    def __init__(
        self,
        base_urls: Mapping[str, str],
        keys: Mapping[str, str],
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        actor_key: Ed25519PrivateKey | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.base_urls = dict(base_urls)
        self.keys = dict(keys)
        # Signs `Dunning-Actor` (WORKSPACE_ACTOR_SIGNING_KEY) at the platform's clock: a simulation moves it for
        # every service alike, so a token is as fresh to them as to the workspace.
        self.actor_key = actor_key
        self.clock = clock
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    def headers_for(self, person: Person) -> dict[str, str]:
        """The tenant's key (the services authorise the workspace, the workspace authorised the person) and the
        person, signed (`Dunning-Actor`, dunning_kit.actor): what a service changes for this call it records
        with the person's name. A fresh token per call: it lives five minutes, a page's calls take less."""
        key = self.keys.get(person.tenant_id)
        if key is None:
            raise ServiceUnavailable("workspace", f"no API key for tenant {person.tenant_id!r} (WORKSPACE_API_KEYS)")
        headers = {"Authorization": f"Bearer {key}"}
        if self.actor_key is not None and self.clock is not None:
            actor = Actor(sub=person.subject, name=person.name, email=person.email, role=person.role.name,
                          tenant=person.tenant_id)  # fmt: skip
            headers[ACTOR_HEADER] = sign(actor, self.actor_key, self.clock.now())
        return headers

    async def call(
        self, person: Person, method: str, service: str, path: str, *, params: Mapping[str, Any] | None = None,
        json: Any = None, content: str | bytes | None = None, headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:  # fmt: skip
        """The service's answer (any 2xx or 4xx: the caller shows a 4xx's problem next to the form); a 5xx or no
        answer raises ServiceUnavailable."""
        url = self.base_urls[service] + path
        try:
            answer = await self._http.request(
                method,
                url,
                params=params,
                json=json,
                content=content,
                headers={**self.headers_for(person), **(headers or {})},
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(service, f"could not be reached ({type(exc).__name__})") from exc
        if answer.status_code >= 500:
            raise ServiceUnavailable(service, f"answered {answer.status_code}")
        return answer

    async def get_json(self, person: Person, service: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """A GET whose answer must be 200 JSON (a 4xx here is the workspace's bug, not the person's input)."""
        answer = await self.call(person, "GET", service, path, params=params)
        if answer.status_code != 200:
            raise ServiceUnavailable(service, f"answered {answer.status_code} to GET {path}: {answer.text[:200]}")
        return answer.json()

    async def close(self) -> None:
        await self._http.aclose()
