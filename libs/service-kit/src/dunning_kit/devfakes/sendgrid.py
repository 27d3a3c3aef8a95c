"""A local fake of SendGrid: the v3 Mail Send API and the signed Event Webhook.

POST /v3/mail/send (Bearer key, JSON with personalizations/from/subject/content) answers 202 with an
X-Message-Id header, 400 with `{"errors": [{"message", "field", "help"}]}` when a field is missing. The
event webhook is signed as SendGrid signs it: ECDSA P-256 / SHA-256 over `timestamp + raw body`, the
base64 DER signature in X-Twilio-Email-Event-Webhook-Signature, the verification key as base64 DER.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dunning_kit.devfakes.asgi_server import AsgiServer


@dataclass
class FakeSendGrid:
    api_key: str | None = None  # None: accept any Bearer key
    host: str = "127.0.0.1"
    port: int = 0
    mails: list[dict[str, Any]] = field(default_factory=list)
    _injected: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256R1())
        self.app = self._build_app()
        self._server = AsgiServer(self.app, self.host, self.port)
        self._http = httpx.AsyncClient(timeout=10)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def public_key(self) -> str:
        """The verification key as SendGrid shows it (base64 DER SubjectPublicKeyInfo)."""
        from cryptography.hazmat.primitives import serialization

        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    async def __aenter__(self) -> FakeSendGrid:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._server.stop()
        await self._http.aclose()

    def fail_next(self, status: int = 503, times: int = 1) -> None:
        self._injected.extend([status] * times)

    def sign(self, timestamp: str, body: bytes) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return base64.b64encode(self._key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()

    def event(self, mail: dict[str, Any], event: str, **extra: Any) -> dict[str, Any]:
        """One event-webhook event about a sent mail, with its custom args at the top level as SendGrid does."""
        return {
            "email": mail["personalizations"][0]["to"][0]["email"],
            "timestamp": int(time.time()),
            "event": event,
            "sg_event_id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
            "sg_message_id": f"{mail['_message_id']}.filter0001.{uuid.uuid4().hex[:8]}.0",
            "smtp-id": f"<{mail['_message_id']}@ismtpd0001p1>",
            "category": mail.get("categories", []),
            **mail.get("custom_args", {}),
            **extra,
        }

    async def post_events(
        self, url: str, events: list[dict[str, Any]], *, tamper: bool = False, signed_at: float | None = None
    ) -> httpx.Response:
        """`signed_at`: sign with that (unix) time instead of now - a captured post replayed later."""
        body = json.dumps(events).encode()
        timestamp = str(int(time.time() if signed_at is None else signed_at))
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": self.sign(timestamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }
        if tamper:  # what a man in the middle would do: change the body after it was signed
            body = body.replace(b'"delivered"', b'"bounce"').replace(b'"processed"', b'"spamreport"') + b" "
        return await self._http.post(url, content=body, headers=headers)

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Fake SendGrid", docs_url=None, redoc_url=None)

        @app.post("/v3/mail/send")
        async def mail_send(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            if not header.startswith("Bearer ") or (self.api_key and header[7:] != self.api_key):
                return JSONResponse({"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked",
                                                 "field": None, "help": None}]}, status_code=401)  # fmt: skip
            try:
                mail = await request.json()
            except ValueError:
                return JSONResponse(
                    {"errors": [{"message": "Bad Request", "field": None, "help": None}]}, status_code=400
                )
            errors = []
            if not mail.get("personalizations") or not mail["personalizations"][0].get("to"):
                errors.append({"message": "The personalizations field is required and must have at least one personalization.",
                               "field": "personalizations", "help": None})  # fmt: skip
            if not (mail.get("from") or {}).get("email"):
                errors.append(
                    {
                        "message": "The from object must be provided for every email send.",
                        "field": "from.email",
                        "help": None,
                    }
                )
            if not mail.get("subject"):
                errors.append({"message": "The subject is required.", "field": "subject", "help": None})
            if not mail.get("content"):
                errors.append({"message": "Unless a valid template_id is provided, the content parameter is required.",
                               "field": "content", "help": None})  # fmt: skip
            if errors:
                return JSONResponse({"errors": errors}, status_code=400)
            if self._injected:
                status = self._injected.pop(0)
                return JSONResponse(
                    {"errors": [{"message": "injected failure", "field": None, "help": None}]}, status_code=status
                )
            message_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            self.mails.append({**mail, "_message_id": message_id})
            return Response(status_code=202, headers={"X-Message-Id": message_id})

        return app
