"""API-key authentication shared by every service: a key is bound to one tenant and a scope.

Keys are stored only as SHA-256 hashes (settings API_KEYS / API_KEYS_FILE, the same Secret mounted in
every service). `python -m dunning_kit.auth <key> <tenant> [scope]` prints the entry for a key.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    scope: str  # "api" or "admin"

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyRegistry:
    def __init__(self, entries: dict[str, Principal]) -> None:
        self._by_hash = entries

    @classmethod
    def parse(cls, text: str) -> ApiKeyRegistry:
        entries: dict[str, Principal] = {}
        for n, raw in enumerate(text.replace(",", "\n").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(":")
            if len(parts) != 3 or parts[1] not in ("api", "admin") or len(parts[2]) != 64:
                raise ValueError(f"api_keys entry {n}: expected tenant:scope:sha256hex with scope api|admin")
            entries[parts[2].lower()] = Principal(tenant_id=parts[0], scope=parts[1])
        return cls(entries)

    @classmethod
    def from_settings(cls, inline: str, file: Path | None) -> ApiKeyRegistry:
        text = inline
        if file is not None:
            text += "\n" + file.read_text()
        return cls.parse(text)

    def authenticate(self, key: str) -> Principal | None:
        digest = hash_key(key)
        for known, principal in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def current_principal(request: Request) -> Principal:
    registry: ApiKeyRegistry = request.app.state.api_keys
    key = _presented_key(request)
    principal = registry.authenticate(key) if key else None
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key (send Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this operation needs an admin-scoped API key")
    return principal


Tenant = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print("usage: python -m dunning_kit.auth <key> <tenant> [api|admin]")
        raise SystemExit(2)
    scope = sys.argv[3] if len(sys.argv) > 3 else "api"
    print(f"{sys.argv[2]}:{scope}:{hash_key(sys.argv[1])}")
