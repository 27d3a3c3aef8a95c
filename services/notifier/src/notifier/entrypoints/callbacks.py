"""Provider callbacks: Twilio status callbacks and inbound SMS (X-Twilio-Signature), the SendGrid event
webhook (ECDSA, and its signed timestamp no older than SENDGRID_WEBHOOK_TOLERANCE_SECONDS). No API key - the
provider's signature is the authentication; a bad one (or a replayed SendGrid post) is 401 and nothing is
recorded. Bodies and request rates are bounded per client before this code runs (dunning_kit.request_limits)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from dunning_kit.problems import FieldError, InvalidInput
from notifier.adapters.channels.twilio import HARD_BOUNCE_CODES
from notifier.adapters.signatures import sendgrid_valid, twilio_valid
from notifier.domain.opt_out import is_stop_request
from notifier.domain.recipients import InvalidAddress, normalize_phone
from notifier.entrypoints.deps import Objects, Runtime
from notifier.service_layer.objects import NotifierRuntime
from notifier.service_layer.receipts import (
    Receipt,
    apply_receipt,
    claim_receipt,
    delivery_by_id,
    delivery_by_provider_id,
)
from notifier.service_layer.suppressions import add_suppression, customers_reached_at

log = logging.getLogger("notifier.callbacks")
router = APIRouter(prefix="/callbacks", tags=["provider callbacks"])

_SID_GRACE_S = 2.0
_TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def _verified_twilio_form(request: Request, runtime: NotifierRuntime) -> dict[str, str]:
    n = runtime.objects
    form = await request.form()
    params = [(k, str(v)) for k, v in form.multi_items()]
    # Twilio signs the URL it called: our public base URL + the path (+ query), not what a proxy rewrote.
    url = (
        n.settings.public_base_url.rstrip("/")
        + request.url.path
        + (f"?{request.url.query}" if request.url.query else "")
    )
    if not twilio_valid(n.settings.twilio_auth_token, url, params, request.headers.get("x-twilio-signature")):
        raise HTTPException(401, detail="invalid X-Twilio-Signature")
    return dict(params)


def _twilio_receipt(fields: dict[str, str]) -> tuple[str, str, Receipt, str | None]:
    """(sid, status, kind, reason) of a message or call status callback."""
    error = fields.get("ErrorCode")
    code = int(error) if error and error.isdigit() else None
    if "CallSid" in fields and "MessageSid" not in fields:
        sid, status = fields["CallSid"], fields.get("CallStatus", "")
        if status == "completed":
            return sid, status, "delivered", None
        if status in ("busy", "no-answer", "canceled"):
            return sid, status, "soft_bounce", f"call {status}"
        if status == "failed":
            return (
                sid,
                status,
                ("hard_bounce" if code in HARD_BOUNCE_CODES else "soft_bounce"),
                f"call failed (error {error})",
            )
        return sid, status, "progress", None
    sid, status = fields.get("MessageSid", ""), fields.get("MessageStatus", "")
    if status == "delivered":
        return sid, status, "delivered", None
    if status in ("undelivered", "failed"):
        hard = code in HARD_BOUNCE_CODES
        return sid, status, ("hard_bounce" if hard else "soft_bounce"), f"sms {status} (error {error})"
    return sid, status, "progress", None


async def _sid_recorded(runtime: Any, sid: str) -> bool:
    """A status callback can overtake the record of its own send: Twilio answers the create call and may
    post `sent`/`completed` before the dispatcher's outcome transaction (which stores the sid) commits.
    Look again for a moment before treating the sid as unknown (a wall-clock wait: it is about real
    seconds at the provider)."""
    deadline = time.monotonic() + _SID_GRACE_S
    while True:
        async with runtime.sessions() as session:
            if await delivery_by_provider_id(session, sid) is not None:
                return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


# The providers' bodies are read raw (their signatures cover them): documented here, since FastAPI cannot infer them.
_TWILIO_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "description": "Twilio's signed callback parameters",
                    "properties": {
                        "MessageSid": {"type": "string"},
                        "MessageStatus": {"type": "string"},
                        "CallSid": {"type": "string"},
                        "CallStatus": {"type": "string"},
                        "ErrorCode": {"type": "string"},
                        "From": {"type": "string"},
                        "Body": {"type": "string"},
                    },
                }
            }
        },
    }
}
_SENDGRID_EVENTS: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "description": "SendGrid's signed event batch",
                    "items": {
                        "type": "object",
                        "properties": {
                            "event": {"type": "string"},
                            "sg_message_id": {"type": "string"},
                            "email": {"type": "string"},
                            "sg_event_id": {"type": "string"},
                            "reason": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                }
            }
        },
    }
}
_TWIML: dict[int | str, dict[str, Any]] = {
    200: {"description": "TwiML (an empty reply)", "content": {"application/xml": {"schema": {"type": "string"}}}}
}


@router.post(
    "/twilio/status",
    status_code=204,
    response_class=Response,
    openapi_extra=_TWILIO_FORM,
    summary="Twilio message and call status callbacks",
)
async def twilio_status(request: Request, runtime: Runtime) -> Response:
    fields = await _verified_twilio_form(request, runtime)
    sid, status, kind, reason = _twilio_receipt(fields)
    now = runtime.clock.now()
    if sid and not await _sid_recorded(runtime, sid):
        log.warning("twilio status %s for unknown sid %s", status, sid)
        return Response(status_code=204)
    async with runtime.sessions() as session, session.begin():
        delivery = await delivery_by_provider_id(session, sid) if sid else None
        if delivery is None:
            log.warning("twilio status %s for unknown sid %s", status, sid)
            return Response(status_code=204)
        if not await claim_receipt(session, "twilio", f"{sid}:{status}", delivery["id"], status, now, fields):
            return Response(status_code=204)  # a retried callback
        if kind != "progress":
            await apply_receipt(session, runtime.outbox, delivery, kind, reason, now)
    return Response(status_code=204)


@router.post(
    "/twilio/inbound",
    response_class=Response,
    responses=_TWIML,
    openapi_extra=_TWILIO_FORM,
    summary="Inbound SMS (STOP-style replies revoke consent)",
)
async def twilio_inbound(request: Request, runtime: Runtime) -> Response:
    fields = await _verified_twilio_form(request, runtime)
    body = fields.get("Body", "")
    if not is_stop_request(body):
        log.info("inbound sms (not an opt-out) from %s", fields.get("From", "")[:4] + "…")
        return Response(_TWIML_EMPTY, media_type="application/xml")
    try:
        number = normalize_phone(fields.get("From", ""))
    except InvalidAddress:
        return Response(_TWIML_EMPTY, media_type="application/xml")
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        if not await claim_receipt(
            session, "twilio", f"inbound:{fields.get('MessageSid', uuid.uuid4())}", None, "stop", now, fields
        ):
            return Response(_TWIML_EMPTY, media_type="application/xml")
        events = []
        for tenant_id, customer_id in await customers_reached_at(session, "phone", number):
            events += await add_suppression(
                session, tenant_id, "phone", number, "stop_reply", customer_id, "sms", body[:200], now
            )
        await runtime.outbox.add(session, events)
    # At most one confirmation text (TCPA), sent by Twilio as the reply to this message.
    confirmation = "You have been unsubscribed and will receive no further messages from us."
    return Response(
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{confirmation}</Message></Response>',
        media_type="application/xml",
    )


_SENDGRID_KINDS: dict[str, Receipt] = {
    "delivered": "delivered",
    "spamreport": "complaint",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
    "dropped": "soft_bounce",
}


def _sendgrid_kind(event: dict[str, Any]) -> Receipt:
    name = event.get("event", "")
    if name == "bounce":
        # `blocked` is a temporary refusal by the receiving server; `bounce` is the address itself.
        return "soft_bounce" if event.get("type") == "blocked" else "hard_bounce"
    return _SENDGRID_KINDS.get(name, "progress")


@router.post(
    "/sendgrid/events",
    response_class=Response,
    openapi_extra=_SENDGRID_EVENTS,
    responses={200: {"description": "Applied (empty body)"}},
    summary="SendGrid event webhook (signed, ECDSA)",
)
async def sendgrid_events(request: Request, runtime: Runtime, notifier: Objects) -> Response:
    raw = await request.body()
    if not sendgrid_valid(
        notifier.settings.sendgrid_webhook_public_key,
        request.headers.get("x-twilio-email-event-webhook-signature"),
        request.headers.get("x-twilio-email-event-webhook-timestamp"),
        raw,
        tolerance_s=notifier.settings.sendgrid_webhook_tolerance_seconds,
    ):
        raise HTTPException(401, detail="invalid SendGrid event webhook signature")
    try:
        events = json.loads(raw)
    except ValueError:
        raise InvalidInput(
            [FieldError("(body)", "is not JSON", "body")], status=400, detail="malformed JSON body"
        ) from None
    if not isinstance(events, list):
        raise InvalidInput(
            [FieldError("(body)", "must be a JSON array of events", "body")],
            status=400,
            detail="expected a JSON array of events",
        )
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        for event in events:
            if not isinstance(event, dict):
                continue
            try:
                delivery_id = uuid.UUID(str(event.get("delivery_id", "")))
            except ValueError:
                continue  # not one of ours (no custom arg)
            delivery = await delivery_by_id(session, delivery_id)
            if delivery is None:
                continue
            event_id = str(event.get("sg_event_id") or f"{delivery_id}:{event.get('event')}:{event.get('timestamp')}")
            if not await claim_receipt(session, "sendgrid", event_id, delivery_id, str(event.get("event")), now, event):
                continue
            kind = _sendgrid_kind(event)
            if kind != "progress":
                reason = str(event.get("reason") or event.get("response") or event.get("event"))[:500]
                await apply_receipt(session, runtime.outbox, delivery, kind, reason, now)
    return Response(status_code=200)
