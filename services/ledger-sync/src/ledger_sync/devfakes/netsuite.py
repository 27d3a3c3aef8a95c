"""A fake NetSuite account: SuiteQL (`POST /services/rest/query/v1/suiteql`, limit/offset, hasMore),
customer payment record queries and reads, and OAuth 1.0a TBA HMAC-SHA256 verification of every call.
It recognises the connector's queries by their FROM clause and date filter rather than running SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote

from authlib.oauth1.rfc5849.signature import construct_base_string
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ledger_sync.connectors.netsuite import hmac_sha256_signature


class FakeNetSuite:
    def __init__(self, account: str, now: Callable[[], datetime], *, consumer_key: str = "ck", consumer_secret: str = "cs",
                 token_id: str = "tid", token_secret: str = "ts") -> None:  # fmt: skip
        self.account = account
        self.now = now
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.token_id, self.token_secret = token_id, token_secret
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.modified: dict[tuple[str, str], datetime] = {}
        self.queries: list[str] = []
        self.rejected = 0
        self.app = self._build()

    def _touch(self, kind: str, id: str) -> str:
        now = self.now()
        self.modified[(kind, id)] = now
        return now.strftime("%Y-%m-%dT%H:%M:%S")

    def customer(self, id: str, name: str, email: str | None = None) -> None:
        self.customers[id] = {"id": id, "entityid": name, "companyname": name, "email": email, "phone": None,
                              "lastmodifieddate": self._touch("customer", id), "links": []}  # fmt: skip

    def invoice(self, id: str, customer: str, total: str, *, currency: str = "1", status: str = "Invoice : Open",
                remaining: str | None = None) -> None:  # fmt: skip
        self.invoices[id] = {"id": id, "tranid": f"INV{id}", "trandate": "2026-03-01", "duedate": "2026-03-31",
                             "entity": customer, "currency": currency, "foreigntotal": total,
                             "foreignamountremaining": remaining if remaining is not None else total, "status": status,
                             "lastmodifieddate": self._touch("invoice", id), "links": []}  # fmt: skip

    def payment(
        self, id: str, customer: str, amount: Decimal, applied: dict[str, Decimal], currency: str = "1"
    ) -> None:
        self.payments[id] = {
            "links": [{"rel": "self", "href": f"/services/rest/record/v1/customerpayment/{id}"}],
            "id": id, "tranId": f"PYMT{id}", "tranDate": "2026-03-10", "customer": {"id": customer, "refName": customer},
            "currency": {"id": currency, "refName": "US Dollar"}, "payment": float(amount),
            "lastModifiedDate": self._touch("payment", id) + "Z",
            "apply": {"items": [{"doc": {"id": inv}, "amount": float(amt), "apply": True, "type": "Invoice"} for inv, amt in applied.items()]},
        }  # fmt: skip

    # ------------------------------------------------------------------ OAuth 1.0a TBA

    def _verify(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("OAuth "):
            return False
        oauth = {k: unquote(v) for k, v in re.findall(r'(\w+)="([^"]*)"', header)}
        if (oauth.get("oauth_consumer_key"), oauth.get("oauth_token")) != (self.consumer_key, self.token_id):
            return False
        if oauth.get("oauth_signature_method") != "HMAC-SHA256" or oauth.get("realm") != self.account:
            return False
        params = [(k, v) for k, v in oauth.items() if k not in ("oauth_signature", "realm")]
        params += parse_qsl(request.url.query, keep_blank_values=True)
        base = construct_base_string(request.method, str(request.url), params)
        expected = hmac_sha256_signature(base, self.consumer_secret, self.token_secret)
        return expected == oauth.get("oauth_signature")

    # ------------------------------------------------------------------ the HTTP API

    def _build(self) -> FastAPI:
        app = FastAPI()
        fake = self

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            if not fake._verify(request):
                fake.rejected += 1
                return JSONResponse({"type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2",
                                     "title": "Unauthorized", "status": 401,
                                     "o:errorDetails": [{"detail": "Invalid login attempt.", "o:errorCode": "INVALID_LOGIN"}]},
                                    status_code=401)  # fmt: skip
            return await call_next(request)

        def since_of(text: str) -> date | None:
            m = re.search(r"TO_DATE\('(\d{4}-\d{2}-\d{2})'", text)
            return date.fromisoformat(m.group(1)) if m else None

        def page(items: list[dict[str, Any]], limit: int, offset: int, url: str) -> JSONResponse:
            chunk = items[offset : offset + limit]
            more = offset + limit < len(items)
            links = [{"rel": "self", "href": url}] + (
                [{"rel": "next", "href": f"{url}?limit={limit}&offset={offset + limit}"}] if more else []
            )
            return JSONResponse({"links": links, "count": len(chunk), "hasMore": more, "items": chunk, "offset": offset,
                                 "totalResults": len(items)})  # fmt: skip

        @app.post("/services/rest/query/v1/suiteql")
        async def suiteql(request: Request, limit: int = 1000, offset: int = 0) -> JSONResponse:
            q = (await request.json())["q"]
            fake.queries.append(q)
            since = since_of(q)
            kind, store = ("customer", fake.customers) if "FROM customer" in q else ("invoice", fake.invoices)
            one = re.search(r"id = (\d+)", q)
            items = [
                o for k, o in sorted(store.items(), key=lambda kv: int(kv[0]))
                if (since is None or fake.modified[(kind, k)].date() >= since) and (not one or k == one.group(1))
            ]  # fmt: skip
            return page(items, min(limit, 1000), offset, "/services/rest/query/v1/suiteql")

        @app.get("/services/rest/record/v1/customerpayment")
        async def payments(request: Request, limit: int = 1000, offset: int = 0, q: str | None = None) -> JSONResponse:
            since = None
            if q:
                m = re.search(r'lastModifiedDate ON_OR_AFTER "(\d+)/(\d+)/(\d{4})"', q)
                if m:
                    since = date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
            items = [
                {"links": p["links"], "id": k} for k, p in sorted(fake.payments.items())
                if since is None or fake.modified[("payment", k)].date() >= since
            ]  # fmt: skip
            return page(items, limit, offset, "/services/rest/record/v1/customerpayment")

        @app.get("/services/rest/record/v1/customerpayment/{id}")
        async def payment(id: str) -> JSONResponse:
            p = fake.payments.get(id)
            if p is None:
                return JSONResponse({"title": "Not Found", "status": 404}, status_code=404)
            return JSONResponse(p)

        return app


__all__ = ["FakeNetSuite"]
