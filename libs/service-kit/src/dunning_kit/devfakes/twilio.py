"""A local fake of the Twilio REST API (Messages and Calls) for the dev stack and tests.

Speaks the real wire format: form-encoded POSTs to /2010-04-01/Accounts/{AccountSid}/Messages.json and
Calls.json with Basic auth (AccountSid:AuthToken), JSON resources and errors (`code`, `message`,
`more_info`, `status`), and signed status callbacks (X-Twilio-Signature = base64 HMAC-SHA1 of the URL plus
the sorted form parameters, keyed by the auth token the request authenticated with). Twilio's magic test
numbers fail as on Twilio: +15005550001 invalid (21211), +15005550002 cannot route (21612), +15005550003 no
international permission (21408), +15005550004 blocked/opted out (21610), +15005550009 not SMS-capable (21614).

    python -m dunning_kit.devfakes.twilio --port 8025
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from html import escape
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from dunning_kit.devfakes.asgi_server import AsgiServer

API = "2010-04-01"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAGIC_TO = {
    "+15005550001": (21211, "Invalid 'To' Phone Number"),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS"),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status_code=status,
    )


async def _form(request: Request) -> dict[str, str]:
    """The request's form fields. Twilio's API takes application/x-www-form-urlencoded: parsed directly
    (the multipart-capable parser costs more than the rest of the fake per message); anything else
    through Starlette's parser."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    return {k: str(v) for k, v in (await request.form()).items()}


@dataclass
class Injected:
    status: int
    code: int
    message: str
    retry_after: int | None = None


@dataclass
class FakeTwilio:
    """`async with FakeTwilio() as twilio:` -> twilio.base_url; twilio.messages / twilio.calls."""

    account_sid: str | None = None  # None: accept any account (the dev stack)
    auth_token: str | None = None  # None: accept any token (callbacks are signed with the one presented)
    auto_callbacks: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    callbacks_sent: list[dict[str, Any]] = field(default_factory=list)
    _injected: list[Injected] = field(default_factory=list)
    _after_accepting: list[Injected] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict)  # resource sid -> auth token used to create it

    def __post_init__(self) -> None:
        self.app = self._build_app()
        self._server = AsgiServer(self.app, self.host, self.port)
        self._http = httpx.AsyncClient(timeout=10)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    async def __aenter__(self) -> FakeTwilio:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.drain()
        await self._server.stop()
        await self._http.aclose()

    # ------------------------------------------------------------------ test controls

    def fail_next(self, status: int = 503, code: int = 20500, message: str = "Internal Server Error", times: int = 1,
                  retry_after: int | None = None) -> None:  # fmt: skip
        """The next `times` create requests answer with this error instead of creating anything."""
        self._injected.extend(Injected(status, code, message, retry_after) for _ in range(times))

    def fail_after_accepting(self, status: int = 500, code: int = 20500, message: str = "Internal Server Error",
                             times: int = 1) -> None:  # fmt: skip
        """The next `times` create requests create the message or call (it goes out) and then answer with this
        error - what a provider failing after it acted looks like to the caller."""
        self._after_accepting.extend(Injected(status, code, message) for _ in range(times))

    def _failed_after_accepting(self, created: JSONResponse) -> JSONResponse:
        if not self._after_accepting:
            return created
        inj = self._after_accepting.pop(0)
        return _error(inj.status, inj.code, inj.message)

    async def drain(self) -> None:
        """Wait for the status callbacks already scheduled."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def status_callback(self, sid: str, status: str, error_code: int | None = None) -> httpx.Response | None:
        """Post a status callback for a message or call, as Twilio would."""
        resource = next((m for m in self.messages + self.calls if m["sid"] == sid), None)
        if resource is None or not resource.get("_status_callback"):
            return None
        is_call = sid.startswith("CA")
        params = {
            "AccountSid": resource["account_sid"],
            "ApiVersion": API,
            "From": resource["from"],
            "To": resource["to"],
        }
        if is_call:
            params.update({"CallSid": sid, "CallStatus": status, "Direction": "outbound-api"})
            if status == "completed":
                params["CallDuration"] = "23"
        else:
            params.update({"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status})
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        resource["status"] = status
        return await self.signed_post(
            resource["_status_callback"], params, self._tokens.get(sid, self.auth_token or "")
        )

    async def inbound_sms(
        self, url: str, from_: str, to: str, body: str, auth_token: str | None = None
    ) -> httpx.Response:
        """An SMS a customer sends to our number, posted to the configured webhook (e.g. a STOP reply)."""
        sid = "SM" + uuid.uuid4().hex
        params = {"AccountSid": self.account_sid or "AC" + "0" * 32, "ApiVersion": API, "MessageSid": sid,
                  "SmsSid": sid, "From": from_, "To": to, "Body": body, "NumMedia": "0"}  # fmt: skip
        return await self.signed_post(url, params, auth_token or self.auth_token or "")

    async def signed_post(self, url: str, params: dict[str, str], auth_token: str) -> httpx.Response:
        headers = {"X-Twilio-Signature": signature(auth_token, url, params), "User-Agent": "TwilioProxy/1.1"}
        response = await self._http.post(url, data=params, headers=headers)
        self.callbacks_sent.append({"url": url, "params": params, "status_code": response.status_code})
        return response

    # ------------------------------------------------------------------ the API

    def _authenticate(self, request: Request, account_sid: str) -> str | JSONResponse:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return _error(401, 20003, "Authenticate")
        try:
            user, _, token = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return _error(401, 20003, "Authenticate")
        if (
            user != account_sid
            or (self.account_sid and user != self.account_sid)
            or (self.auth_token and token != self.auth_token)
        ):
            return _error(401, 20003, "Authenticate")
        return token

    def _injected_error(self) -> JSONResponse | None:
        if not self._injected:
            return None
        inj = self._injected.pop(0)
        response = _error(inj.status, inj.code, inj.message)
        if inj.retry_after is not None:
            response.headers["Retry-After"] = str(inj.retry_after)
        return response

    def _schedule(self, sid: str, statuses: list[str]) -> None:
        async def run() -> None:
            for status in statuses:
                await asyncio.sleep(0.01)
                await self.status_callback(sid, status)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Fake Twilio REST API", docs_url=None, redoc_url=None)

        @app.post("/2010-04-01/Accounts/{account_sid}/Messages.json")
        async def create_message(account_sid: str, request: Request) -> JSONResponse:
            token = self._authenticate(request, account_sid)
            if isinstance(token, JSONResponse):
                return token
            form = await _form(request)
            to, body = form.get("To", ""), form.get("Body", "")
            if not to:
                return _error(400, 21604, "A 'To' phone number is required.")
            if not body and not form.get("MediaUrl"):
                return _error(400, 21602, "Message body is required.")
            if not form.get("From") and not form.get("MessagingServiceSid"):
                return _error(400, 21603, "The 'From' phone number is required.")
            if not _E164.match(to):
                return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
            if to in MAGIC_TO:
                code, message = MAGIC_TO[to]
                return _error(400, code, message)
            if (injected := self._injected_error()) is not None:
                return injected
            sid = "SM" + uuid.uuid4().hex
            now = formatdate(usegmt=True)
            resource = {
                "account_sid": account_sid, "api_version": API, "body": body, "date_created": now, "date_updated": now,
                "date_sent": None, "direction": "outbound-api", "error_code": None, "error_message": None,
                "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"), "num_media": "0",
                "num_segments": str(max(1, -(-len(body) // 153))), "price": None, "price_unit": "USD", "sid": sid,
                "status": "accepted" if form.get("MessagingServiceSid") else "queued", "to": to,
                "uri": f"/{API}/Accounts/{account_sid}/Messages/{sid}.json",
                "subresource_uris": {"media": f"/{API}/Accounts/{account_sid}/Messages/{sid}/Media.json"},
            }  # fmt: skip
            self.messages.append({**resource, "_status_callback": form.get("StatusCallback")})
            self._tokens[sid] = token
            if self.auto_callbacks and form.get("StatusCallback"):
                self._schedule(sid, ["sent", "delivered"])
            return self._failed_after_accepting(JSONResponse(resource, status_code=201))

        @app.post("/2010-04-01/Accounts/{account_sid}/Calls.json")
        async def create_call(account_sid: str, request: Request) -> JSONResponse:
            token = self._authenticate(request, account_sid)
            if isinstance(token, JSONResponse):
                return token
            form = await _form(request)
            to = form.get("To", "")
            if not to:
                return _error(400, 21201, "No 'To' number is specified")
            if not form.get("From"):
                return _error(400, 21213, "No 'From' number is specified")
            if not form.get("Twiml") and not form.get("Url") and not form.get("ApplicationSid"):
                return _error(400, 21205, "Url, ApplicationSid or Twiml parameter is required")
            if not _E164.match(to) or to == "+15005550001":
                return _error(400, 21217, f"Phone number is not a valid phone number: {to}")
            if (injected := self._injected_error()) is not None:
                return injected
            sid = "CA" + uuid.uuid4().hex
            now = formatdate(usegmt=True)
            resource = {
                "account_sid": account_sid, "api_version": API, "sid": sid, "status": "queued", "to": to,
                "from": form["From"], "direction": "outbound-api", "date_created": now, "date_updated": now,
                "start_time": None, "end_time": None, "duration": None, "price": None, "price_unit": "USD",
                "answered_by": None, "uri": f"/{API}/Accounts/{account_sid}/Calls/{sid}.json",
            }  # fmt: skip
            self.calls.append({**resource, "_status_callback": form.get("StatusCallback"), "_twiml": form.get("Twiml")})
            self._tokens[sid] = token
            if self.auto_callbacks and form.get("StatusCallback"):
                self._schedule(sid, ["completed"])
            return self._failed_after_accepting(JSONResponse(resource, status_code=201))

        @app.get("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json")
        async def get_message(account_sid: str, sid: str, request: Request) -> JSONResponse:
            token = self._authenticate(request, account_sid)
            if isinstance(token, JSONResponse):
                return token
            for m in self.messages:
                if m["sid"] == sid:
                    return JSONResponse({k: v for k, v in m.items() if not k.startswith("_")})
            return _error(
                404, 20404, f"The requested resource /{API}/Accounts/{account_sid}/Messages/{sid}.json was not found"
            )

        @app.get("/2010-04-01/Accounts/{account_sid}/Messages.json")
        async def list_messages(account_sid: str, request: Request) -> JSONResponse:
            token = self._authenticate(request, account_sid)
            if isinstance(token, JSONResponse):
                return token
            items = [{k: v for k, v in m.items() if not k.startswith("_")} for m in reversed(self.messages)]
            return JSONResponse({"messages": items, "page": 0, "page_size": len(items), "first_page_uri": None,
                                 "next_page_uri": None, "previous_page_uri": None,
                                 "uri": f"/{API}/Accounts/{account_sid}/Messages.json"})  # fmt: skip

        @app.get("/_fake/stats", include_in_schema=False)
        async def stats() -> JSONResponse:
            """Not Twilio's: how many messages and calls this fake accepted (for benches and scripts)."""
            return JSONResponse({"messages": len(self.messages), "calls": len(self.calls)})

        @app.get("/", response_class=HTMLResponse, include_in_schema=False)
        async def index() -> HTMLResponse:
            rows = "".join(
                f"<tr><td>{escape(m['sid'])}</td><td>SMS</td><td>{escape(m['to'])}</td><td>{escape(m['status'])}</td>"
                f"<td>{escape(m['body'])}</td></tr>"
                for m in reversed(self.messages)
            ) + "".join(
                f"<tr><td>{escape(c['sid'])}</td><td>call</td><td>{escape(c['to'])}</td><td>{escape(c['status'])}</td>"
                f"<td><pre>{escape(c.get('_twiml') or '')}</pre></td></tr>"
                for c in reversed(self.calls)
            )
            return HTMLResponse(
                '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">'
                "<title>Fake Twilio</title></head><body style='font-family:sans-serif'><h1>Fake Twilio</h1>"
                f"<table border=1 cellpadding=4><tr><th>SID</th><th>Kind</th><th>To</th><th>Status</th><th>Body</th></tr>{rows}</table>"
                "</body></html>"
            )

        return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Local fake of the Twilio REST API (Messages, Calls, callbacks)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--auth-token", default=None, help="Only accept this auth token (default: any)")
    args = parser.parse_args()

    async def run() -> None:
        fake = FakeTwilio(auth_token=args.auth_token, host=args.host, port=args.port)
        async with fake:
            print(f"fake Twilio listening on {fake.base_url}", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
