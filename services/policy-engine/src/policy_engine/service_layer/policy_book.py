"""The policies in force per tenant: stored versions plus the built-in default, parsed once per version."""

from __future__ import annotations

import json
from collections.abc import Iterable

import asyncpg

from policy_engine.domain.policy import DEFAULT_POLICY, DEFAULT_POLICY_ID, Policy, validate_policy


class PolicyBook:
    """A version is immutable, so a parsed version is cached forever; which version is current is read
    from the database on every batch (another replica may have published one a moment ago)."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str, int], Policy] = {}

    async def current(self, apg: asyncpg.Connection, tenants: Iterable[str]) -> dict[str, dict[str, Policy]]:
        tenants = list(set(tenants))
        out: dict[str, dict[str, Policy]] = {t: {} for t in tenants}
        if not tenants:
            return out
        heads = await apg.fetch(
            "SELECT DISTINCT ON (tenant_id, policy_id) tenant_id, policy_id, version, retired_at FROM policies "
            "WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id, policy_id, version DESC",
            tenants,
        )
        missing = [
            (h["tenant_id"], h["policy_id"], h["version"])
            for h in heads
            if h["retired_at"] is None and (h["tenant_id"], h["policy_id"], h["version"]) not in self._parsed
        ]
        if missing:
            t, p, v = zip(*missing, strict=True)
            docs = await apg.fetch(
                "SELECT tenant_id, policy_id, version, document::text AS document FROM policies "
                "WHERE (tenant_id, policy_id, version) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::int4[]))",
                list(t),
                list(p),
                list(v),
            )
            for d in docs:
                key = (d["tenant_id"], d["policy_id"], d["version"])
                self._parsed[key] = Policy(validate_policy(json.loads(d["document"])), version=d["version"])
        for h in heads:
            if h["retired_at"] is None:
                out[h["tenant_id"]][h["policy_id"]] = self._parsed[(h["tenant_id"], h["policy_id"], h["version"])]
        for policies in out.values():
            policies.setdefault(DEFAULT_POLICY_ID, DEFAULT_POLICY)
        return out

    async def for_tenant(self, apg: asyncpg.Connection, tenant: str) -> dict[str, Policy]:
        return (await self.current(apg, [tenant]))[tenant]


async def load_assignments(
    apg: asyncpg.Connection, tenant: str, customers: Iterable[str], segments: Iterable[str | None]
) -> dict[tuple[str, str], str]:
    rows = await apg.fetch(
        "SELECT scope, target, policy_id FROM policy_assignments WHERE tenant_id = $1 AND "
        "((scope = 'customer' AND target = ANY($2::text[])) OR (scope = 'segment' AND target = ANY($3::text[])))",
        tenant,
        list(set(customers)),
        [s for s in set(segments) if s is not None],
    )
    return {(r["scope"], r["target"]): r["policy_id"] for r in rows}
