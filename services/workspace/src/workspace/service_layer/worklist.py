"""The worklist's items, gathered from the services that know them, each source read on its own:

- broken promises (promise-tracker `GET /v1/promises?status=broken`): the shortfall is at risk;
- open disputes (insights' portfolio `disputed=true`, largest balance first: at a million open invoices the
  read model answers from an index, where ledger-sync's list would have to be scanned);
- collector tasks (notifier `GET /v1/tasks`, open ones): the step's total is at risk;
- bounced and failed messages (notifier `GET /v1/deliveries?status=bounced|failed`);
- ERP records in quarantine (ledger-sync `GET /v1/connectors/{name}/quarantine` of every connector);
- hand-offs to collections a person has not completed yet (policy-engine `GET /v1/hand-offs`): the balance handed
  off is at risk, aged from the hand-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from workspace.adapters.platform import PlatformClient
from workspace.domain.formats import as_decimal
from workspace.domain.people import Person
from workspace.domain.worklist import WorkItem, ranked
from workspace.service_layer.reads import Part, all_pages, parts, send

SOURCE_MOST = 200  # items read per source


def _day(value: str | None, fallback: date) -> date:
    if not value:
        return fallback
    return datetime.fromisoformat(value).date() if "T" in value else date.fromisoformat(value[:10])


@dataclass
class Worklist:
    items: list[WorkItem]
    unavailable: list[str]  # services whose items are missing from the list


async def broken_promises(platform: PlatformClient, person: Person, today: date) -> list[WorkItem]:
    found = await all_pages(platform, person, "promise-tracker", "/v1/promises", {"status": "broken"}, most=SOURCE_MOST)
    return [
        WorkItem("broken_promise", p["id"], p["customer_id"], _day(p.get("resolved_at") or p["deadline"], today),
                 as_decimal(p["shortfall"]), p["currency"], {"promised_date": p["promised_date"], "amount": p["amount"]})
        for p in found
    ]  # fmt: skip


async def disputes(platform: PlatformClient, person: Person, today: date) -> list[WorkItem]:
    """Open invoices under dispute, aged from their due date (how long the money has been owed)."""
    found = await all_pages(
        platform, person, "insights", "/v1/portfolio", {"disputed": "true", "sort": "-balance"}, most=SOURCE_MOST
    )
    return [
        WorkItem("dispute", i["invoice_id"], i["customer_id"], _day(i.get("due_date"), today),
                 as_decimal(i["balance"]), i["currency"], {"number": i["number"], "reason": None})
        for i in found
    ]  # fmt: skip


async def tasks(platform: PlatformClient, person: Person, today: date) -> list[WorkItem]:
    found = await all_pages(platform, person, "notifier", "/v1/tasks", {"status": "open"}, most=SOURCE_MOST)
    out = []
    for task in found:
        details: dict[str, Any] = task.get("details") or {}
        out.append(WorkItem("task", task["id"], task["customer_id"], _day(task["created_at"], today),
                            as_decimal(details.get("total")), details.get("currency"),
                            {"title": task["title"], "body": task["body"],
                             "assignee": task.get("assignee_name")}))  # fmt: skip
    return out


async def failed_messages(platform: PlatformClient, person: Person, today: date) -> list[WorkItem]:
    out = []
    for status in ("bounced", "failed"):
        found = await all_pages(platform, person, "notifier", "/v1/deliveries", {"status": status}, most=SOURCE_MOST)
        out += [
            WorkItem("bounced", d["id"], d["customer_id"], _day(d["updated_at"], today), None, None,
                     {"status": d["status"], "channel": d["channel"], "recipient": d.get("recipient"), "error": d.get("error")})
            for d in found
        ]  # fmt: skip
    return out


async def quarantined(platform: PlatformClient, person: Person, today: date) -> list[WorkItem]:
    connectors = await all_pages(platform, person, "ledger-sync", "/v1/connectors", {}, most=SOURCE_MOST)
    out = []
    for connector in connectors:
        name = connector["connector"]
        found = await all_pages(
            platform, person, "ledger-sync", f"/v1/connectors/{name}/quarantine", {}, most=SOURCE_MOST
        )
        for r in found:
            payload = r.get("payload") if isinstance(r.get("payload"), dict) else {}
            customer = r.get("entity_id") if r["entity"] == "customer" else (payload or {}).get("customer_id")
            out.append(WorkItem("quarantined", f"{name}:{r['entity']}:{r.get('entity_id')}", customer,
                                _day(r["quarantined_at"], today), None, None,
                                {"connector": name, "entity": r["entity"], "entity_id": r.get("entity_id"),
                                 "error": r["error"]}))  # fmt: skip
    return out


async def hand_offs(platform: PlatformClient, person: Person, today: date) -> list[WorkItem]:
    found = await all_pages(platform, person, "policy-engine", "/v1/hand-offs", {}, most=SOURCE_MOST)
    return [
        WorkItem("hand_off", h["invoice_id"], h["customer_id"], _day(h.get("handed_off_at"), today),
                 as_decimal(h["balance"]), h["currency"],
                 {"invoice_id": h["invoice_id"], "step": h.get("step"), "policy_id": h.get("policy_id")})
        for h in found
    ]  # fmt: skip


async def worklist(
    platform: PlatformClient, person: Person, today: date, *, currency: str | None = None, kind: str | None = None
) -> Worklist:
    sources = (broken_promises, disputes, hand_offs, tasks, failed_messages, quarantined)
    found: list[Part[list[WorkItem]]] = await parts(*(source(platform, person, today) for source in sources))
    items = [i for p in found for i in p.value or []]
    if currency:
        items = [i for i in items if i.currency == currency]
    if kind:
        items = [i for i in items if i.kind == kind]
    unavailable = sorted({p.unavailable for p in found if p.unavailable})
    return Worklist(ranked(items, today), unavailable)


async def assign_task(platform: PlatformClient, person: Person, task_id: str) -> None:
    """notifier's `POST /v1/tasks/{id}/assign`: the task is the signed-in person's."""
    body = {"assignee": {"sub": person.subject, "name": person.name}}
    await send(platform, person, "POST", "notifier", f"/v1/tasks/{quote(task_id, safe='')}/assign", body)


async def snooze_task(platform: PlatformClient, person: Person, task_id: str, until: str) -> None:
    """notifier's `POST /v1/tasks/{id}/snooze`: off the open list until the start of that day (UTC)."""
    body = {"until": f"{until}T00:00:00+00:00"}
    await send(platform, person, "POST", "notifier", f"/v1/tasks/{quote(task_id, safe='')}/snooze", body)


async def complete_task(platform: PlatformClient, person: Person, task_id: str, note: str | None) -> None:
    """notifier's `POST /v1/tasks/{id}/complete`; what it refuses comes back as `Refused` (e.g. `note` too long)."""
    await send(
        platform, person, "POST", "notifier", f"/v1/tasks/{quote(task_id, safe='')}/complete", {"note": note or None}
    )


async def complete_hand_off(
    platform: PlatformClient, person: Person, invoice_id: str, outcome: str, note: str | None
) -> None:
    """policy-engine's `POST /v1/hand-offs/{invoice_id}/acknowledge`: the timeline names the person; a hand-off
    completed already is refused (409), as is an outcome it does not know (422 at `outcome`)."""
    path = f"/v1/hand-offs/{quote(invoice_id, safe='')}/acknowledge"
    await send(platform, person, "POST", "policy-engine", path, {"outcome": outcome, "note": note or None})


def total_at_risk(items: list[WorkItem]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for i in items:
        if i.amount is not None and i.currency:
            out[i.currency] = out.get(i.currency, Decimal(0)) + i.amount
    return out
