"""Signed, expiring tokens for customer-facing links (pay now, promise to pay): no login needed.

Token = base64url(JSON payload) + "." + base64url(HMAC-SHA256(secret, payload)). The payload always
holds `exp` (unix seconds). The notifier makes them; the promise-tracker's self-service page reads them.
Both read the secret from SELF_SERVICE_SIGNING_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any


class InvalidLink(Exception):
    """The token was tampered with, malformed, or signed with another key."""


class ExpiredLink(InvalidLink):
    """The token was genuine but its time is over."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, payload: dict[str, Any], expires_at: datetime) -> str:
    body = json.dumps({**payload, "exp": int(expires_at.timestamp())}, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.digest(secret.encode(), body, "sha256")  # the one-shot C path: same MAC as hmac.new(...).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def verify(secret: str, token: str, now: datetime) -> dict[str, Any]:
    """The payload of a genuine, unexpired token; raises InvalidLink or ExpiredLink otherwise."""
    try:
        body_part, mac_part = token.split(".", 1)
        body = _unb64(body_part)
        mac = _unb64(mac_part)
    except (ValueError, TypeError) as exc:
        raise InvalidLink("malformed link") from exc
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise InvalidLink("the link's signature does not match")
    payload: dict[str, Any] = json.loads(body)
    if int(payload.get("exp", 0)) < now.timestamp():
        raise ExpiredLink("the link has expired")
    return payload
