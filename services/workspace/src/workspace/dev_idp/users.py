"""The development identity provider's people: one per role, all of tenant acme, with `roles` and `tenant` claims."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dunning_kit.dev_secrets import DEV_IDP_USERS


@dataclass(frozen=True)
class DevPerson:
    username: str
    password: str
    name: str
    email: str
    roles: list[str] | None = field(default_factory=list)  # None: the token carries no roles claim at all
    tenant: str | None = "acme"  # None: no tenant claim

    @property
    def subject(self) -> str:
        return f"dev-{self.username}"

    def claims(self) -> dict[str, Any]:
        """What the ID token and userinfo say about this person."""
        out: dict[str, Any] = {
            "sub": self.subject, "name": self.name, "preferred_username": self.username, "email": self.email,
            "email_verified": True,
        }  # fmt: skip
        if self.roles is not None:
            out["roles"] = list(self.roles)
        if self.tenant is not None:
            out["tenant"] = self.tenant
        return out


def seeded() -> list[DevPerson]:
    """vera (viewer), colin (collector), mona (manager), adam (admin): "Vera Viewer", vera@acme.test, ..."""
    return [
        DevPerson(username, password, f"{username.capitalize()} {role.capitalize()}", f"{username}@acme.test", [role])
        for username, (password, role) in DEV_IDP_USERS.items()
    ]
