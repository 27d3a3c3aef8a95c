"""A fake Xero organisation: Contacts, Invoices, CreditNotes, Payments with If-Modified-Since, `where`,
`page=` (100 per page, `pagination`), `IDs=`, MS JSON dates, `xero-tenant-id`, the identity token endpoint
with rotating refresh tokens, and signed webhooks. Field names as Xero's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

ENDPOINTS = {"Contacts": "ContactID", "Invoices": "InvoiceID", "CreditNotes": "CreditNoteID", "Payments": "PaymentID"}


def ms_date(value: datetime | date) -> str:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return f"/Date({int(value.timestamp() * 1000)}+0000)/"


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, default=lambda d: float(d) if isinstance(d, Decimal) else str(d)).encode()


class FakeXero:
    def __init__(self, tenant_id: str, now: Callable[[], datetime], *, client_id: str = "xero-client",
                 client_secret: str = "xero-secret", refresh_token: str = "xrt-0") -> None:  # fmt: skip
        self.tenant_id = tenant_id
        self.now = now
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.access_token: str | None = None
        self.store: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in ENDPOINTS}
        self.updated: dict[str, dict[str, datetime]] = {k: {} for k in ENDPOINTS}
        self.fail_next: list[tuple[int, dict[str, str]]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._last = now()
        self.app = self._build()

    def _touch(self, endpoint: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._last = max(self.now(), self._last + timedelta(milliseconds=1))
        obj["UpdatedDateUTC"] = ms_date(self._last)
        self.store[endpoint][obj[ENDPOINTS[endpoint]]] = obj
        self.updated[endpoint][obj[ENDPOINTS[endpoint]]] = self._last
        return obj

    def contact(self, id: str, name: str, email: str = "") -> dict[str, Any]:
        return self._touch("Contacts", {"ContactID": id, "Name": name, "EmailAddress": email, "ContactStatus": "ACTIVE",
                                        "IsCustomer": True, "Addresses": [{"AddressType": "POBOX", "Country": "NZ"}],
                                        "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "555 0100", "PhoneAreaCode": "09",
                                                    "PhoneCountryCode": "64"}]})  # fmt: skip

    def invoice(self, id: str, contact: str, total: str, *, status: str = "AUTHORISED", type_: str = "ACCREC",
                currency: str = "NZD", issued: date = date(2026, 3, 1), due: date = date(2026, 3, 31)) -> dict[str, Any]:  # fmt: skip
        paid = sum((Decimal(str(p["Amount"])) for p in self.store["Payments"].values()
                    if p["Invoice"]["InvoiceID"] == id and p["Status"] == "AUTHORISED"), start=Decimal(0))  # fmt: skip
        return self._touch("Invoices", {
            "Type": type_, "InvoiceID": id, "InvoiceNumber": f"INV-{id[-4:]}", "Contact": {"ContactID": contact},
            "Date": ms_date(issued), "DateString": issued.isoformat() + "T00:00:00", "DueDate": ms_date(due),
            "Status": status if paid < Decimal(total) else "PAID", "LineAmountTypes": "Exclusive",
            "SubTotal": Decimal(total), "TotalTax": Decimal(0), "Total": Decimal(total),
            "AmountDue": Decimal(total) - paid, "AmountPaid": paid, "AmountCredited": Decimal(0), "CurrencyCode": currency,
            "Payments": [{"PaymentID": p["PaymentID"], "Amount": p["Amount"]} for p in self.store["Payments"].values()
                         if p["Invoice"]["InvoiceID"] == id],
        })  # fmt: skip

    def payment(self, id: str, invoice: str, amount: str, *, status: str = "AUTHORISED") -> dict[str, Any]:
        inv = self.store["Invoices"][invoice]
        obj = self._touch("Payments", {
            "PaymentID": id, "Date": ms_date(date(2026, 3, 10)), "Amount": Decimal(amount), "Reference": f"REF-{id}",
            "Status": status, "PaymentType": "ACCRECPAYMENT", "IsReconciled": False,
            "Invoice": {"InvoiceID": invoice, "InvoiceNumber": inv["InvoiceNumber"], "CurrencyCode": inv["CurrencyCode"],
                        "Contact": {"ContactID": inv["Contact"]["ContactID"]}, "Type": "ACCREC"},
        })  # fmt: skip
        # Xero updates the invoice too (and sends no webhook for the payment itself)
        self.invoice(invoice, inv["Contact"]["ContactID"], str(inv["Total"]), currency=inv["CurrencyCode"])
        return obj

    def void(self, id: str) -> None:
        inv = self.store["Invoices"][id]
        inv["Status"] = "VOIDED"
        self._touch("Invoices", inv)

    # ------------------------------------------------------------------ webhooks

    def webhook(self, events: list[tuple[str, str]]) -> bytes:
        """events: (category, resource id); an empty list is the intent-to-receive probe."""
        return json.dumps({
            "events": [{"resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{rid}", "resourceId": rid,
                        "eventDateUtc": self.now().isoformat(), "eventType": "UPDATE", "eventCategory": cat,
                        "tenantId": self.tenant_id, "tenantType": "ORGANISATION"} for cat, rid in events],
            "firstEventSequence": 1, "lastEventSequence": len(events), "entropy": secrets.token_hex(10).upper(),
        }).encode()  # fmt: skip

    @staticmethod
    def sign(body: bytes, key: str) -> str:
        return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()

    # ------------------------------------------------------------------ the HTTP API

    def _build(self) -> FastAPI:
        app = FastAPI()
        fake = self

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            fake.requests.append((request.url.path, dict(request.headers)))
            if fake.fail_next and request.url.path.startswith("/api.xro"):
                status, headers = fake.fail_next.pop(0)
                return Response(status_code=status, headers=headers)
            if request.url.path.startswith("/api.xro"):
                if request.headers.get("authorization") != f"Bearer {fake.access_token}":
                    return JSONResponse({"Type": None, "Title": "Unauthorized", "Status": 401}, status_code=401)
                if request.headers.get("xero-tenant-id") != fake.tenant_id:
                    return JSONResponse({"Title": "Forbidden", "Detail": "AuthenticationUnsuccessful"}, status_code=403)
            return await call_next(request)

        @app.post("/connect/token")
        async def token(request: Request) -> JSONResponse:
            form = await request.form()
            basic = "Basic " + base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
            if request.headers.get("authorization") != basic or form.get("refresh_token") != fake.refresh_token:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            fake.access_token = f"xat-{uuid.uuid4().hex[:8]}"
            fake.refresh_token = f"xrt-{uuid.uuid4().hex[:8]}"
            return JSONResponse({"access_token": fake.access_token, "expires_in": 1800, "token_type": "Bearer",
                                 "refresh_token": fake.refresh_token, "scope": "accounting.transactions offline_access"})  # fmt: skip

        def matches(obj: dict[str, Any], where: str | None) -> bool:
            if not where:
                return True
            m = re.fullmatch(r'\s*(\w+)\s*==\s*(?:"([^"]*)"|(true|false))\s*', where)
            if not m:
                return True
            value = m.group(2) if m.group(2) is not None else m.group(3) == "true"
            return obj.get(m.group(1)) == value

        @app.get("/api.xro/2.0/{endpoint}")
        async def list_(endpoint: str, request: Request) -> Response:
            if endpoint not in ENDPOINTS:
                return JSONResponse({"Title": "Not Found"}, status_code=404)
            since_raw = request.headers.get("if-modified-since")
            since = datetime.fromisoformat(since_raw).replace(tzinfo=UTC) if since_raw else None
            ids = request.query_params.get("IDs")
            items = [
                o for k, o in fake.store[endpoint].items()
                if (since is None or fake.updated[endpoint][k] > since) and matches(o, request.query_params.get("where"))
                and (not ids or k in ids.split(","))
            ]  # fmt: skip
            items.sort(key=lambda o: o["UpdatedDateUTC"])
            page = int(request.query_params.get("page", 1))
            chunk = items[(page - 1) * 100 : page * 100]
            count = max(1, -(-len(items) // 100))
            body = {"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": "dunning", "DateTimeUTC": ms_date(fake.now()),
                    "pagination": {"page": page, "pageSize": 100, "pageCount": count, "itemCount": len(items)},
                    endpoint: chunk}  # fmt: skip
            return Response(_dumps(body), media_type="application/json")

        @app.get("/api.xro/2.0/{endpoint}/{id}")
        async def one(endpoint: str, id: str) -> Response:
            obj = fake.store.get(endpoint, {}).get(id)
            if obj is None:
                return JSONResponse({"Title": "Not Found", "Status": 404}, status_code=404)
            return Response(_dumps({"Status": "OK", endpoint: [obj]}), media_type="application/json")

        return app
