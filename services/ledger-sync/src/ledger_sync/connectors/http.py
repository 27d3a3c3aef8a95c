"""HTTP to an ERP: backoff on 429 and 5xx that honours Retry-After, token refresh on 401, exact JSON numbers.

Every request (token refreshes too) has a total deadline besides httpx's per-read timeout, so an ERP trickling
its answer a byte at a time costs one attempt at most `request_deadline_seconds` (a connection's config,
DEFAULT_DEADLINE_SECONDS otherwise), then is retried like any other transport error.
Sleeping goes through an injected `sleep`, so tests see the delays without waiting them out.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from dunning_kit.http_deadline import within_deadline
from dunning_kit.outbound import ForbiddenDestination, OutboundPolicy

log = logging.getLogger("ledger_sync.connectors")

# A page of an ERP's list endpoint can be large and slow to build on their side; a minute is generous for one
# request and still bounds a sync's stall on a trickling server.
DEFAULT_DEADLINE_SECONDS = 60.0

Sleep = Callable[[float], Awaitable[None]]
SaveCredentials = Callable[[dict[str, Any]], Awaitable[None]]


class ErpError(Exception):
    """The ERP refused or kept failing; the sync stops here and resumes from its cursor next time."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Auth(Protocol):
    async def apply(self, request: httpx.Request) -> None: ...

    async def refresh(self, client: httpx.AsyncClient) -> bool:
        """Get new credentials after a 401; False when there is nothing to refresh."""
        ...


class BearerToken:
    """A fixed secret key (Stripe)."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self.token}"

    async def refresh(self, client: httpx.AsyncClient) -> bool:
        return False


class OAuth2RefreshToken:
    """OAuth2 with rotating refresh tokens (QuickBooks, Xero): every refresh returns a NEW refresh token,
    and the old one dies, so the new one is saved (its own transaction) before it is used."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        credentials: dict[str, Any],
        save: SaveCredentials,
        now: Callable[[], datetime],
        deadline: float | None = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        self.deadline = deadline  # the token request only: saving the rotated token must never be cut off
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.credentials = credentials
        self.save = save
        self.now = now
        self._lock = asyncio.Lock()

    def _expired(self) -> bool:
        expires = self.credentials.get("access_token_expires_at")
        if not self.credentials.get("access_token") or not expires:
            return True
        return datetime.fromisoformat(expires) <= self.now() + timedelta(seconds=60)

    async def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self.credentials.get('access_token', '')}"

    async def ensure(self, client: httpx.AsyncClient) -> None:
        if self._expired():
            await self.refresh(client)

    async def refresh(self, client: httpx.AsyncClient) -> bool:
        async with self._lock:
            basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            response = await within_deadline(
                client.post(
                    self.token_url,
                    data={"grant_type": "refresh_token", "refresh_token": self.credentials.get("refresh_token", "")},
                    headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
                ),
                self.deadline,
            )
            if response.status_code != 200:
                raise ErpError(f"token refresh failed: HTTP {response.status_code} {response.text[:200]}", 401)
            doc = response.json()
            updated = {
                **self.credentials,
                "access_token": doc["access_token"],
                "access_token_expires_at": (
                    self.now() + timedelta(seconds=int(doc.get("expires_in", 3600)))
                ).isoformat(),
                "refresh_token": doc.get("refresh_token", self.credentials.get("refresh_token")),
            }
            await self.save(updated)
            self.credentials.clear()
            self.credentials.update(updated)
            return True


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class ErpHttp:
    def __init__(
        self,
        base_url: str,
        auth: Auth,
        *,
        sleep: Sleep = asyncio.sleep,
        max_attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        default_headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        egress: OutboundPolicy | None = None,
        deadline: float | None = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        # The ERP's address is the tenant's to configure: the client never connects to an internal address
        # (a strict policy unless one is given; an explicit `transport` is a test's own).
        client_options: dict[str, Any] = {"base_url": base_url, "timeout": 30, "headers": dict(default_headers or {})}
        self.client = (
            httpx.AsyncClient(transport=transport, **client_options)
            if transport is not None
            else (egress or OutboundPolicy()).client(**client_options)
        )
        self.deadline = deadline
        self.auth = auth
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    async def close(self) -> None:
        await self.client.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The response (2xx or 404); raises ErpError for anything else after retries."""
        try:
            return await self._request(method, url, **kwargs)
        except ForbiddenDestination as exc:  # the token URL or the API: no retry, no credentials sent
            raise ErpError(f"{method} {url}: {exc}") from exc

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        ensure = getattr(self.auth, "ensure", None)
        if ensure is not None:
            await ensure(self.client)
        refreshed = False
        for attempt in range(1, self.max_attempts + 1):
            request = self.client.build_request(method, url, **kwargs)
            await self.auth.apply(request)
            try:
                response = await within_deadline(self.client.send(request), self.deadline)
            except httpx.TransportError as exc:
                if attempt == self.max_attempts:
                    raise ErpError(f"{method} {url}: {exc}") from exc
                await self.sleep(self._backoff(attempt))
                continue
            if response.status_code < 300 or response.status_code == 404:
                return response
            if response.status_code == 401 and not refreshed and await self.auth.refresh(self.client):
                refreshed = True
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == self.max_attempts:
                    raise ErpError(
                        f"{method} {url}: HTTP {response.status_code} after {attempt} attempts", response.status_code
                    )
                hinted = retry_after_seconds(response.headers.get("retry-after"), datetime.now(UTC))
                delay = min(self.max_delay, hinted) if hinted is not None else self._backoff(attempt)
                log.info("%s %s: HTTP %s, retrying in %.1fs", method, url, response.status_code, delay)
                await self.sleep(delay)
                continue
            raise ErpError(f"{method} {url}: HTTP {response.status_code} {response.text[:300]}", response.status_code)
        raise ErpError(f"{method} {url}: gave up")  # pragma: no cover - the loop returns or raises

    def _backoff(self, attempt: int) -> float:
        # Exponential with full jitter, so many tenants retrying do not march in step.
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    async def json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self.request(method, url, **kwargs)
        if response.status_code == 404:
            return None
        return json.loads(response.content, parse_float=Decimal)


def deadline_from(config: Mapping[str, Any]) -> float:
    """A connection's `request_deadline_seconds` (config), or the default."""
    return float(config.get("request_deadline_seconds", DEFAULT_DEADLINE_SECONDS))


def json_exact(body: bytes) -> Any:
    """Parse ERP JSON with every non-integer number as a Decimal."""
    return json.loads(body, parse_float=Decimal)
