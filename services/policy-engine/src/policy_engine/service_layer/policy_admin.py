"""Publishing, retiring and assigning policies. A new version re-plans the open cases bound to the policy
(from their next step on); an assignment re-plans the customer's (or segment's) open cases."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from dunning_kit.actor import Actor
from policy_engine.adapters.repository import flag_replan
from policy_engine.domain.policy import DEFAULT_POLICY, DEFAULT_POLICY_ID, PolicyDocument


class PolicyConflict(Exception):
    pass


class UnknownPolicy(LookupError):
    pass


async def _lock(apg: asyncpg.Connection, tenant: str, policy_id: str) -> None:
    # Two admins publishing at once get consecutive versions rather than a key collision.
    await apg.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"policy:{tenant}:{policy_id}")


async def latest_version(apg: asyncpg.Connection, tenant: str, policy_id: str) -> tuple[int, bool] | None:
    """(version, retired) of the newest stored version; the built-in default counts as version 1."""
    row = await apg.fetchrow(
        "SELECT version, retired_at IS NOT NULL AS retired FROM policies WHERE tenant_id = $1 AND policy_id = $2 "
        "ORDER BY version DESC LIMIT 1",
        tenant,
        policy_id,
    )
    if row is not None:
        return row["version"], row["retired"]
    return (1, False) if policy_id == DEFAULT_POLICY_ID else None


async def publish(
    apg: asyncpg.Connection, tenant: str, doc: PolicyDocument, now: datetime, *, must_be_new: bool,
    author: Actor | None = None,
) -> tuple[int, int]:  # fmt: skip
    """Store the document as the policy's next version, with the person who published it (None: an API key
    alone); returns (version, open cases to re-plan)."""
    await _lock(apg, tenant, doc.id)
    latest = await latest_version(apg, tenant, doc.id)
    if must_be_new and latest is not None and not latest[1]:
        raise PolicyConflict(
            f"policy {doc.id} exists (version {latest[0]}); PUT /v1/policies/{doc.id} publishes a new version"
        )
    version = 1 if latest is None else latest[0] + 1
    await apg.execute(
        "INSERT INTO policies (tenant_id, policy_id, version, document, created_at, author_sub, author_name) "
        "VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7)",
        tenant, doc.id, version, json.dumps(doc.model_dump(mode="json")), now,
        author.sub if author else None, author.name if author else None,
    )  # fmt: skip
    if latest is not None and latest[1]:
        await apg.execute(
            "UPDATE policies SET retired_at = NULL WHERE tenant_id = $1 AND policy_id = $2", tenant, doc.id
        )
    replanned = await flag_replan(apg, "tenant_id = $1 AND policy_id = $2", tenant, doc.id, now=now)
    return version, replanned


async def retire(apg: asyncpg.Connection, tenant: str, policy_id: str, now: datetime) -> int:
    if policy_id == DEFAULT_POLICY_ID:
        raise PolicyConflict("the default policy cannot be deleted; publish a new version of it instead")
    await _lock(apg, tenant, policy_id)
    status = await apg.execute(
        "UPDATE policies SET retired_at = $3 WHERE tenant_id = $1 AND policy_id = $2 AND retired_at IS NULL",
        tenant, policy_id, now,
    )  # fmt: skip
    if status.endswith(" 0"):
        raise UnknownPolicy(policy_id)
    await apg.execute("DELETE FROM policy_assignments WHERE tenant_id = $1 AND policy_id = $2", tenant, policy_id)
    return await flag_replan(apg, "tenant_id = $1 AND policy_id = $2", tenant, policy_id, now=now)


async def versions(apg: asyncpg.Connection, tenant: str, policy_id: str) -> list[dict[str, Any]]:
    rows = await apg.fetch(
        "SELECT version, created_at, retired_at, author_sub, author_name, document::text AS document FROM policies "
        "WHERE tenant_id = $1 AND policy_id = $2 ORDER BY version",
        tenant,
        policy_id,
    )
    out = [
        {"version": r["version"], "created_at": r["created_at"].isoformat(),
         "retired_at": r["retired_at"].isoformat() if r["retired_at"] else None,
         "author": {"sub": r["author_sub"], "name": r["author_name"]} if r["author_sub"] else None,
         "document": json.loads(r["document"])}
        for r in rows
    ]  # fmt: skip
    if policy_id == DEFAULT_POLICY_ID and not any(v["version"] == 1 for v in out):
        out.insert(0, {"version": 1, "created_at": None, "retired_at": None, "builtin": True, "author": None,
                       "document": DEFAULT_POLICY.doc.model_dump(mode="json")})  # fmt: skip
    return out


async def assign(
    apg: asyncpg.Connection, tenant: str, scope: str, target: str, policy_id: str | None, now: datetime
) -> int:
    """Assign (or with None, unassign) a policy to a customer or a segment; re-plans the affected open cases."""
    if policy_id is None:
        await apg.execute(
            "DELETE FROM policy_assignments WHERE tenant_id = $1 AND scope = $2 AND target = $3", tenant, scope, target
        )
    else:
        await apg.execute(
            "INSERT INTO policy_assignments (tenant_id, scope, target, policy_id, assigned_at) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (tenant_id, scope, target) DO UPDATE SET policy_id = EXCLUDED.policy_id, assigned_at = EXCLUDED.assigned_at",
            tenant, scope, target, policy_id, now,
        )  # fmt: skip
    if scope == "customer":
        return await flag_replan(apg, "tenant_id = $1 AND customer_id = $2", tenant, target, now=now)
    return await flag_replan(
        apg,
        "tenant_id = $1 AND customer_id IN (SELECT customer_id FROM customers WHERE tenant_id = $1 AND segment = $2)",
        tenant, target, now=now,
    )  # fmt: skip
