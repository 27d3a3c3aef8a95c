"""What the policy-engine's routes read: policies, versions and assignments as cursor pages, timelines, and
whether a customer or an invoice is known. The routers call these and hold no SQL.

Orders: policies by (priority, id) as the engine tries them; versions by number; assignments by their primary
key (scope, target); timelines by the entry's serial id (indexes (tenant_id, invoice_id|customer_id, id)).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg

from dunning_kit.pages import CursorCodec, Page
from policy_engine.domain.policy import Policy
from policy_engine.service_layer import policy_admin

POLICIES = CursorCodec("policy.policies")
VERSIONS = CursorCodec("policy.versions")
ASSIGNMENTS = CursorCodec("policy.assignments")
# An invoice's timeline and a customer's are two lists: a cursor of one is refused by the other.
TIMELINES = {column: CursorCodec(f"policy.timeline.{column}") for column in ("invoice_id", "customer_id")}


def policies_page(current: dict[str, Policy], *, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
    """The book holds a tenant's policies in memory (a handful): the keyset cut runs over its sorted list."""
    after = POLICIES.decode(cursor, 2)
    ordered = sorted(current.values(), key=lambda p: (p.doc.priority, p.id))
    rest = [p for p in ordered if after is None or (p.doc.priority, p.id) > after]
    return POLICIES.page(rest[: limit + 1], limit, lambda p: (p.doc.priority, p.id), lambda p: p.to_json())


async def versions_page(
    apg: asyncpg.Connection, tenant: str, policy_id: str, *, limit: int, cursor: str | None
) -> Page[dict[str, Any]] | None:
    """None when there is no such policy (the built-in default always has its version 1)."""
    after = VERSIONS.decode(cursor, 1)
    found = await policy_admin.versions(apg, tenant, policy_id)
    if not found:
        return None
    rest = [v for v in found if after is None or v["version"] > after[0]]
    return VERSIONS.page(rest[: limit + 1], limit, lambda v: (v["version"],), lambda v: v)


async def assignments_page(
    apg: asyncpg.Connection, tenant: str, *, limit: int, cursor: str | None
) -> Page[dict[str, Any]]:
    after = ASSIGNMENTS.decode(cursor, 2)
    rows = await apg.fetch(
        "SELECT scope, target, policy_id, assigned_at FROM policy_assignments WHERE tenant_id = $1 "
        "AND ($2::text IS NULL OR (scope, target) > ($2, $3)) ORDER BY scope, target LIMIT $4",
        tenant, after[0] if after else None, after[1] if after else None, limit + 1,
    )  # fmt: skip
    return ASSIGNMENTS.page(
        rows,
        limit,
        lambda r: (r["scope"], r["target"]),
        lambda r: {"scope": r["scope"], "target": r["target"], "policy_id": r["policy_id"],
                   "assigned_at": r["assigned_at"].isoformat()},
    )  # fmt: skip


async def customer_known(apg: asyncpg.Connection, tenant: str, customer_id: str) -> bool:
    return bool(
        await apg.fetchval(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE tenant_id = $1 AND customer_id = $2) OR "
            "EXISTS (SELECT 1 FROM cases WHERE tenant_id = $1 AND customer_id = $2)",
            tenant,
            customer_id,
        )
    )


async def invoice_known(apg: asyncpg.Connection, tenant: str, invoice_id: str) -> bool:
    return bool(
        await apg.fetchval(
            "SELECT EXISTS (SELECT 1 FROM cases WHERE tenant_id = $1 AND invoice_id = $2)", tenant, invoice_id
        )
    )


_TIMELINE_SQL = {
    column: "SELECT id, at, kind, step_name, invoice_id, reason, detail::text AS detail FROM timeline "
    f"WHERE tenant_id = $1 AND {column} = $2 AND id > $3 ORDER BY id LIMIT $4"
    for column in ("invoice_id", "customer_id")
}


def _entry(r: Any) -> dict[str, Any]:
    return {"at": r["at"].isoformat(), "kind": r["kind"], "step": r["step_name"], "invoice_id": r["invoice_id"],
            "reason": r["reason"], "detail": json.loads(r["detail"])}  # fmt: skip


async def timeline_page(
    apg: asyncpg.Connection,
    tenant: str,
    column: Literal["invoice_id", "customer_id"],
    value: str,
    *,
    limit: int,
    cursor: str | None,
) -> Page[dict[str, Any]] | None:
    """A page of the decisions about one invoice or customer, oldest first; None when it is not known at all."""
    codec = TIMELINES[column]
    after = codec.decode(cursor, 1)
    rows: Sequence[Any] = await apg.fetch(_TIMELINE_SQL[column], tenant, value, after[0] if after else 0, limit + 1)
    if not rows and after is None:
        known = await (customer_known if column == "customer_id" else invoice_known)(apg, tenant, value)
        if not known:
            return None
    return codec.page(rows, limit, lambda r: (r["id"],), _entry)
