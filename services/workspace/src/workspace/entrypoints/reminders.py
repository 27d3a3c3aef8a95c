"""The case's "send a reminder now" (`POST /customers/{id}/remind`, collector or above): the policy engine decides
it by the contact rules; done, the case says what went out (303 `?done=remind`); refused by a rule, the case again
(422) with the rule's reason at the form and, for a rule that ends by itself, from when it is possible."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from workspace.domain import formats
from workspace.domain.people import Role
from workspace.entrypoints.cases import act
from workspace.entrypoints.deps import Runtime
from workspace.entrypoints.people import CheckedForm, require
from workspace.entrypoints.web import Translator, language_of
from workspace.service_layer import reminders
from workspace.service_layer.reads import Refused
from workspace.service_layer.sessions import SignedIn

router = APIRouter(include_in_schema=False)
Collector = Depends(require(Role.collector))
ACTION = "remind"


@router.post(f"/customers/{{customer_id}}/{ACTION}")
async def remind(
    request: Request, customer_id: str, form: CheckedForm, runtime: Runtime, signed: SignedIn = Collector
) -> Response:
    t = Translator(language_of(request))
    sent: list[reminders.SentReminder] = []

    async def change(v: dict[str, Any]) -> None:
        try:
            sent.append(await reminders.send_reminder(
                runtime.objects.platform, signed.person, customer_id, v.get("channel", ""), v["invoice_ids"],
                v.get("idempotency_key") or secrets.token_urlsafe(16),
            ))  # fmt: skip
        except reminders.ReminderRefused as exc:
            text = t("remind.refused", reason=exc.reason)
            if exc.not_before is not None:
                text += " " + t("remind.possible_from", at=formats.instant(exc.not_before, t.language))
            raise Refused("policy-engine", 409, {"_form": text}, "") from None

    answer = await act(request, runtime, signed, customer_id, ACTION, form, change)
    if answer.status_code != 303 or not sent:
        return answer
    # What went out, for the case to say (the channel and how many invoices).
    what = urlencode({"done": ACTION, "channel": sent[0].channel, "invoices": len(sent[0].invoice_ids)})
    return RedirectResponse(f"/customers/{quote(customer_id, safe='')}?{what}#{ACTION}", status_code=303)
