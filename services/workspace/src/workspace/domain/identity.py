"""Who a verified ID token says a person is: their role (the roles claim and the mapping table, the higher one
wins) and their tenant (the tenant claim, else the default). No role or no tenant: no session, and the refusal
says which one was missing, so an administrator knows what to fix at the identity provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workspace.domain.people import Person, Role, highest_role


class IdentityRefused(Exception):
    """The token is genuine, but the workspace will not open a session for it (`reason`: a UI text key)."""

    def __init__(self, reason: str, **values: str) -> None:
        super().__init__(reason, values)
        self.reason = reason
        self.values = values


@dataclass(frozen=True)
class IdentityRules:
    """The settings that turn claims into a Person (WORKSPACE_ROLES_CLAIM, _ROLE_MAP, _TENANT_CLAIM, ...)."""

    roles_claim: str
    role_map: Mapping[str, Role]  # lower-cased email -> role
    tenant_claim: str
    default_tenant: str


def parse_role_map(text: str) -> dict[str, Role]:
    """`email=role` comma-separated (emails compared without case); a role name that is not one is an error."""
    roles: dict[str, Role] = {}
    for n, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        email, sep, name = (part.strip() for part in entry.rpartition("="))
        role = Role.parse(name)
        if not sep or not email or role is None:
            raise ValueError(f"entry {n}: expected email=role with role one of {', '.join(r.name for r in Role)}")
        if email.lower() in roles:
            raise ValueError(f"entry {n}: {email!r} is listed twice")
        roles[email.lower()] = role
    return roles


def role_names(claim: Any) -> list[str]:
    """A roles claim as names: providers send a list (Keycloak, Entra ID) or one space-separated string."""
    if isinstance(claim, str):
        return claim.replace(",", " ").split()
    if isinstance(claim, list | tuple):
        return [item for item in claim if isinstance(item, str)]
    return []


def person_from_claims(claims: Mapping[str, Any], rules: IdentityRules) -> Person:
    """The person a verified token names, or IdentityRefused naming what is missing."""
    subject = str(claims.get("sub") or "")
    email = str(claims.get("email") or "")
    name = str(claims.get("name") or claims.get("preferred_username") or email or subject)
    candidates = role_names(claims.get(rules.roles_claim))
    # The table is keyed by email, so it only counts when the provider does not say the address is unverified:
    # otherwise anyone who may type an address at the provider could give themselves that person's role.
    mapped = rules.role_map.get(email.lower()) if email and claims.get("email_verified") is not False else None
    if mapped is not None:
        candidates.append(mapped.name)
    role = highest_role(candidates)
    if role is None:
        raise IdentityRefused("sign_in.refused.no_role", name=name, claim=rules.roles_claim)
    tenant = claims.get(rules.tenant_claim)
    tenant_id = tenant.strip() if isinstance(tenant, str) and tenant.strip() else rules.default_tenant
    if not tenant_id:
        raise IdentityRefused("sign_in.refused.no_tenant", name=name, claim=rules.tenant_claim)
    return Person(subject, name, email, tenant_id, role)
