"""Dry run: every step that would go out in a window, per customer, channel and amount — nothing written.

It runs the same decisions as the timer (policy, calendar, quiet hours, consent, caps as of now, stale
ledger) on copies of the open cases, advancing each case through its schedule inside the window.

A draft of a policy is previewed as publishing it would act: the draft takes the policy's place at the next
version, and the open cases on that policy are flagged for re-planning (flag_replan: re-resolved and re-planned
from now). `compare_draft` runs both and says what the draft changes: messages per day and channel, and who would
be contacted that is not now, who no longer, whose steps differ.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from policy_engine.adapters import repository as repo
from policy_engine.domain import cases as rules
from policy_engine.domain.fees import InvoiceFacts, step_fees
from policy_engine.domain.policy import Policy
from policy_engine.service_layer.firing import bind_policies, cap_check
from policy_engine.service_layer.freshness import stale_tenants
from policy_engine.service_layer.handlers import EngineConfig
from policy_engine.service_layer.policy_book import PolicyBook


async def preview(
    apg: asyncpg.Connection,
    book: PolicyBook,
    config: EngineConfig,
    tenant: str,
    start: datetime,
    end: datetime,
    now: datetime,
    max_cases: int,
    draft: Policy | None = None,
) -> dict[str, Any]:
    if draft is None:
        cases = await repo.load_where(
            apg, "tenant_id = $1 AND status = 'open' AND next_at IS NOT NULL AND next_at < $2", tenant, end,
            lock=False, limit=max_cases + 1,
        )  # fmt: skip
    else:  # the draft's cases are re-planned from now, whenever their next step was due
        cases = await repo.load_where(
            apg, "tenant_id = $1 AND status = 'open' AND next_at IS NOT NULL AND (next_at < $2 OR policy_id = $3)",
            tenant, end, draft.id, lock=False, limit=max_cases + 1,
        )  # fmt: skip
    truncated = len(cases) > max_cases
    cases = cases[:max_cases]
    debtors = await repo.load_debtors(apg, {(c.tenant_id, c.customer_id) for c in cases})
    policies = await book.current(apg, [tenant])
    if draft is not None:
        policies[tenant] = {**policies[tenant], draft.id: draft}
        for case in cases:
            if case.policy_id == draft.id:
                case.replan = True
                case.next_at = min(case.next_at, now) if case.next_at is not None else None
    stale = (await stale_tenants(apg, [tenant], now, config.stale_after)).get(tenant)
    bound = await bind_policies(apg, cases, debtors, policies)
    caps = await cap_check(apg, cases, bound, now)

    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for case in cases:
        debtor = debtors[(tenant, case.customer_id)]
        policy = bound[id(case)]
        for _ in range(3 * len(policy.steps) + 5):
            at = case.next_at
            if at is None or at >= end:
                break
            at = max(at, now)
            firing = rules.decide(case, debtor, policy, at, stale, caps)
            if firing is None:
                continue
            today = rules.window(policy, debtor).local_date(at)
            facts = [InvoiceFacts(case.invoice_id, case.number, case.balance, case.due_date, case.in_default,
                                  case.compensation_charged)]  # fmt: skip
            fees = step_fees(firing.step, facts, case.currency, today, debtor.country)
            if at >= start:
                key = (case.customer_id, firing.step.name, case.currency, tuple(firing.channels), today)
                entry = groups.setdefault(key, {
                    "at": at.isoformat(), "customer_id": case.customer_id, "step": firing.step.name,
                    "tone": firing.step.tone, "template_id": firing.step.template_id, "channels": firing.channels,
                    "currency": case.currency, "amount_due": Decimal(0), "invoices": [], "fees": [],
                    "late": False, "policy": f"{policy.id} v{policy.version}", "day": today.isoformat(),
                })  # fmt: skip
                entry["amount_due"] += case.balance
                entry["invoices"].append({"invoice_id": case.invoice_id, "number": case.number,
                                          "balance": str(case.balance)})  # fmt: skip
                entry["fees"] += [{"kind": f.kind, "description": f.description, "amount": str(f.amount)}
                                  for f in fees.lines]  # fmt: skip
                entry["late"] = entry["late"] or firing.late_by is not None
                entry["at"] = min(entry["at"], at.isoformat())
            if firing.case.invoice_id in fees.compensation_for:
                case.compensation_charged = True
            rules.mark_sent(firing, debtor, at, "preview", [], [])
        case.notes.clear()
    steps = sorted(groups.values(), key=lambda e: (e["at"], e["customer_id"], e["step"]))
    totals: dict[str, dict[str, Any]] = defaultdict(lambda: {"steps": 0, "amount_due": Decimal(0)})
    for e in steps:
        totals[e["currency"]]["steps"] += 1
        totals[e["currency"]]["amount_due"] += e["amount_due"]
        e["amount_due"] = str(e["amount_due"])
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "steps": steps,
        "count": len(steps),
        "totals": {cur: {"steps": t["steps"], "amount_due": str(t["amount_due"])} for cur, t in totals.items()},
        "truncated": truncated,
    }


async def compare_draft(
    apg: asyncpg.Connection,
    book: PolicyBook,
    config: EngineConfig,
    tenant: str,
    draft: Policy,
    start: datetime,
    end: datetime,
    now: datetime,
    max_cases: int,
) -> dict[str, Any]:
    """The window as it would go with the policies in force, and with `draft` published: both previews, the
    messages per day and channel of each, and the customers the draft adds, drops or contacts differently."""
    current = await preview(apg, book, config, tenant, start, end, now, max_cases)
    drafted = await preview(apg, book, config, tenant, start, end, now, max_cases, draft=draft)
    volume: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    plans: tuple[dict[str, set[tuple[str, str, str]]], dict[str, set[tuple[str, str, str]]]] = ({}, {})
    for side, result in enumerate((current, drafted)):
        for step in result["steps"]:
            for channel in step["channels"]:
                volume[(step["day"], channel)][side] += 1
                plans[side].setdefault(step["customer_id"], set()).add((step["day"], step["step"], channel))
    now_plan, draft_plan = plans
    return {
        "policy_id": draft.id,
        "draft_version": draft.version,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "current": current,
        "draft": drafted,
        "per_day_and_channel": [
            {"day": day, "channel": channel, "current": counts[0], "draft": counts[1]}
            for (day, channel), counts in sorted(volume.items())
        ],
        "customers_added": sorted(set(draft_plan) - set(now_plan)),
        "customers_dropped": sorted(set(now_plan) - set(draft_plan)),
        "customers_changed": sorted(c for c in set(now_plan) & set(draft_plan) if now_plan[c] != draft_plan[c]),
    }
