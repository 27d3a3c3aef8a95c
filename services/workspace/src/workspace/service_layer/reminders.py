"""A one-off reminder now, asked of the policy engine for the signed-in person (POST
/v1/customers/{id}/reminders): what went out, or the contact rule that refuses it now and, for a rule that ends by
itself, the earliest moment it allows one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from workspace.adapters.platform import PlatformClient, ServiceUnavailable
from workspace.domain.people import Person
from workspace.service_layer.reads import Refused, field_errors

# What the engine accepts (its ReminderIn): the form offers these, with "the current step's" as the default.
CHANNELS = ("email", "sms", "letter")
_INDEX = re.compile(r"\[\d+\]$")


class ReminderRefused(Exception):
    """A contact rule refuses the reminder now (the engine's 409): the rule, the engine's reason, `not_before`."""

    def __init__(self, rule: str, reason: str, not_before: datetime | None) -> None:
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason
        self.not_before = not_before


@dataclass(frozen=True)
class SentReminder:
    channel: str
    invoice_ids: list[str]


async def send_reminder(
    platform: PlatformClient, person: Person, customer_id: str, channel: str, invoice_ids: list[str],
    idempotency_key: str,
) -> SentReminder:  # fmt: skip
    """Raises ReminderRefused (a contact rule), Refused (the input: `channel`, `invoice_ids`) or
    ServiceUnavailable."""
    if channel and channel not in CHANNELS:
        raise Refused("workspace", 422, {"channel": "choose email, SMS or letter"}, "")
    body = {"channel": channel or None, "invoice_ids": invoice_ids or None}
    path = f"/v1/customers/{quote(customer_id, safe='')}/reminders"
    answer = await platform.call(person, "POST", "policy-engine", path, json=body,
                                 headers={"Idempotency-Key": idempotency_key})  # fmt: skip
    if answer.status_code >= 500:
        raise ServiceUnavailable("policy-engine", f"answered {answer.status_code} to POST {path}")
    problem: dict[str, Any] = answer.json() if answer.status_code >= 400 else {}
    if answer.status_code == 409:
        (error,) = problem.get("errors") or [{"field": "", "reason": problem.get("detail", "")}]
        at = problem.get("not_before")
        raise ReminderRefused(str(error["field"]), str(error["reason"]), datetime.fromisoformat(at) if at else None)
    if answer.status_code >= 400:
        # invoice_ids[2] -> invoice_ids: the form has one field for the invoices (the first reason is kept)
        errors: dict[str, str] = {}
        for field, reason in field_errors(problem).items():
            errors.setdefault(_INDEX.sub("", field), reason)
        raise Refused("policy-engine", answer.status_code, errors, str(problem.get("detail") or ""))
    sent = answer.json()
    return SentReminder(sent["channel"], list(sent["invoice_ids"]))
