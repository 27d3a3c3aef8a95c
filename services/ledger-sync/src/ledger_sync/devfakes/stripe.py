"""A fake Stripe account: list/retrieve customers, invoices, credit notes and events (newest first,
`starting_after` paging), Bearer auth, and `Stripe-Signature`-signed webhook events. Field names as Stripe's.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

LISTS = {"customers": "customer", "invoices": "invoice", "credit_notes": "credit_note"}


class FakeStripe:
    def __init__(
        self, now: Callable[[], datetime], *, api_key: str = "sk_test_fake", webhook_secret: str = "whsec_fake"
    ) -> None:
        self.now = now
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.store: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in LISTS}
        self.events: list[dict[str, Any]] = []
        self.fail_next: list[tuple[int, dict[str, str]]] = []
        self.requests: list[str] = []
        self._seq = itertools.count(1)
        self.app = self._build()

    def _ts(self) -> int:
        return int(self.now().timestamp())

    def _event(self, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        ev = {"id": f"evt_{next(self._seq):06d}", "object": "event", "type": type_, "created": self._ts(),
              "api_version": "2024-06-20", "livemode": False, "data": {"object": json.loads(json.dumps(obj))}}  # fmt: skip
        self.events.append(ev)
        return ev

    # ------------------------------------------------------------------ the account's data

    def customer(self, id: str, name: str, email: str | None = None, country: str | None = None) -> dict[str, Any]:
        obj = {"id": id, "object": "customer", "created": self._ts(), "name": name, "email": email, "phone": None,
               "address": {"country": country} if country else None, "preferred_locales": ["de"] if country == "DE" else []}  # fmt: skip
        self.store["customers"][id] = obj
        self._event("customer.created", obj)
        return obj

    def invoice(self, id: str, customer: str, total: int, *, currency: str = "eur", due_in_days: int | None = 30,
                number: str | None = None, status: str = "open") -> dict[str, Any]:  # fmt: skip
        now = self._ts()
        obj = {
            "id": id, "object": "invoice", "customer": customer, "currency": currency, "status": status,
            "number": number or f"INV-{id[-4:].upper()}", "created": now, "total": total, "subtotal": total,
            "amount_due": total, "amount_paid": 0, "amount_remaining": total, "collection_method": "send_invoice",
            "due_date": now + due_in_days * 86400 if due_in_days is not None else None,
            "hosted_invoice_url": f"https://invoice.stripe.com/i/{id}",
            "status_transitions": {"finalized_at": now if status != "draft" else None, "paid_at": None,
                                   "voided_at": None, "marked_uncollectible_at": None},
        }  # fmt: skip
        self.store["invoices"][id] = obj
        self._event("invoice.created", obj)
        if status == "open":
            self._event("invoice.finalized", obj)
        return obj

    def pay(self, id: str, amount: int | None = None) -> dict[str, Any]:
        inv = self.store["invoices"][id]
        paid = inv["amount_remaining"] if amount is None else amount
        inv["amount_paid"] += paid
        inv["amount_remaining"] -= paid
        if inv["amount_remaining"] == 0:
            inv["status"] = "paid"
            inv["status_transitions"]["paid_at"] = self._ts()
            self._event("invoice.paid", inv)
        else:
            self._event("invoice.updated", inv)
        return inv

    def void(self, id: str) -> dict[str, Any]:
        inv = self.store["invoices"][id]
        inv.update(status="void", amount_remaining=0)
        inv["status_transitions"]["voided_at"] = self._ts()
        self._event("invoice.voided", inv)
        return inv

    def uncollectible(self, id: str) -> dict[str, Any]:
        inv = self.store["invoices"][id]
        inv["status"] = "uncollectible"
        inv["status_transitions"]["marked_uncollectible_at"] = self._ts()
        self._event("invoice.marked_uncollectible", inv)
        return inv

    def credit_note(self, id: str, invoice: str, amount: int) -> dict[str, Any]:
        inv = self.store["invoices"][invoice]
        pre = min(amount, inv["amount_remaining"])
        inv["amount_remaining"] -= pre
        inv["amount_due"] -= pre
        obj = {"id": id, "object": "credit_note", "invoice": invoice, "customer": inv["customer"],
               "currency": inv["currency"], "amount": amount, "total": amount, "pre_payment_amount": pre,
               "post_payment_amount": amount - pre, "created": self._ts(), "number": f"CN-{id[-4:].upper()}",
               "status": "issued", "type": "pre_payment" if pre == amount else "post_payment"}  # fmt: skip
        self.store["credit_notes"][id] = obj
        self._event("credit_note.created", obj)
        return obj

    # ------------------------------------------------------------------ webhooks

    def signed(self, event: dict[str, Any], *, secret: str | None = None, at: int | None = None) -> tuple[bytes, str]:
        body = json.dumps(event).encode()
        t = str(at if at is not None else self._ts())
        sig = hmac.new((secret or self.webhook_secret).encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
        return body, f"t={t},v1={sig}"

    # ------------------------------------------------------------------ the HTTP API

    def _build(self) -> FastAPI:
        app = FastAPI()
        fake = self

        def error(status: int, message: str, type_: str = "invalid_request_error") -> JSONResponse:
            return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status)

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            fake.requests.append(request.url.path + ("?" + request.url.query if request.url.query else ""))
            if fake.fail_next:
                status, headers = fake.fail_next.pop(0)
                return JSONResponse({"error": {"type": "api_error"}}, status_code=status, headers=headers)
            if request.headers.get("authorization") != f"Bearer {fake.api_key}":
                return error(401, "Invalid API Key provided", "authentication_error")
            return await call_next(request)

        def page(items: list[dict[str, Any]], request: Request, url: str) -> JSONResponse:
            limit = min(int(request.query_params.get("limit", 10)), 100)
            after = request.query_params.get("starting_after")
            ordered = sorted(items, key=lambda o: (o["created"], o["id"]), reverse=True)
            if after:
                ids = [o["id"] for o in ordered]
                ordered = ordered[ids.index(after) + 1 :] if after in ids else []
            return JSONResponse(
                {"object": "list", "url": url, "has_more": len(ordered) > limit, "data": ordered[:limit]}
            )

        @app.get("/v1/events")
        async def events(request: Request) -> JSONResponse:
            gt = int(request.query_params.get("created[gt]", 0))
            return page([e for e in fake.events if e["created"] > gt], request, "/v1/events")

        @app.get("/v1/{name}")
        async def list_objects(name: str, request: Request) -> JSONResponse:
            if name not in LISTS:
                return error(404, f"Unrecognized request URL (GET: /v1/{name})")
            return page(list(fake.store[name].values()), request, f"/v1/{name}")

        @app.get("/v1/{name}/{id}")
        async def retrieve(name: str, id: str) -> JSONResponse:
            obj = fake.store.get(name, {}).get(id)
            if obj is None:
                return error(404, f"No such {LISTS.get(name, name)}: '{id}'")
            return JSONResponse(obj)

        return app
