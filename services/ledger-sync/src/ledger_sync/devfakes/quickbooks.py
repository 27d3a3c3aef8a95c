"""A fake QuickBooks Online company: query, CDC (1000-object cap, deleted stubs), reads, OAuth2 token
endpoint with rotating refresh tokens, and signed webhooks in both formats. Field names as Intuit's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_plus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

ENTITIES = ("Customer", "Invoice", "CreditMemo", "Payment")
CAP = 1000


def _dumps(doc: Any) -> bytes:
    # QBO sends numbers as JSON numbers; Decimals go out as such (never through a binary float).
    return json.dumps(doc, default=lambda d: float(d) if isinstance(d, Decimal) else str(d)).encode()


class FakeQuickBooks:
    def __init__(self, realm_id: str, now: Callable[[], datetime], *, client_id: str = "qb-client",
                 client_secret: str = "qb-secret", refresh_token: str = "rt-0") -> None:  # fmt: skip
        self.realm = realm_id
        self.now = now
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.access_token: str | None = None
        self.objects: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in ENTITIES}
        self.deleted: dict[str, dict[str, datetime]] = {e: {} for e in ENTITIES}
        self.requests: list[tuple[str, str]] = []  # (method, path?query) as received
        self.fail_next: list[tuple[int, dict[str, str]]] = []  # statuses to answer before serving normally
        self.fail_when: Callable[[Request], tuple[int, dict[str, str]] | None] | None = None
        self._ids = itertools.count(100)
        self._last = now()
        self.app = self._build()

    # ------------------------------------------------------------------ the company's data

    def stamp(self) -> datetime:
        """Server time, strictly increasing so every change has its own LastUpdatedTime."""
        self._last = max(self.now(), self._last + timedelta(milliseconds=1))
        return self._last

    def _save(self, entity: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("Id", str(next(self._ids)))
        prev = self.objects[entity].get(obj["Id"])
        sync = int(prev["SyncToken"]) + 1 if prev else 0
        created = prev["MetaData"]["CreateTime"] if prev else self.stamp().isoformat()
        obj.update(SyncToken=str(sync), MetaData={"CreateTime": created, "LastUpdatedTime": self.stamp().isoformat()},
                   domain="QBO", sparse=False)  # fmt: skip
        self.objects[entity][obj["Id"]] = obj
        self.deleted[entity].pop(obj["Id"], None)
        return obj

    def customer(self, id: str, name: str, email: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = {"Id": id, "DisplayName": name, "Active": True}
        if email:
            obj["PrimaryEmailAddr"] = {"Address": email}
        return self._save("Customer", obj)

    def invoice(self, id: str, customer: str, total: str, *, txn_date: str = "2026-03-01",
                due_date: str | None = "2026-03-31", currency: str = "USD", doc_number: str | None = None,
                **extra: Any) -> dict[str, Any]:  # fmt: skip
        prev = self.objects["Invoice"].get(id, {})
        paid = sum(
            (Decimal(str(line["Amount"])) for p in self.objects["Payment"].values() for line in p["Line"]
             if any(t["TxnId"] == id for t in line.get("LinkedTxn", []))),
            start=Decimal(0),
        )  # fmt: skip
        obj: dict[str, Any] = {
            "Id": id, "DocNumber": doc_number or f"10{id}", "TxnDate": txn_date, "CustomerRef": {"value": customer},
            "CurrencyRef": {"value": currency, "name": currency}, "TotalAmt": Decimal(total),
            "Balance": Decimal(total) - paid, "HomeBalance": Decimal(total) - paid, "EmailStatus": "NotSet",
            "LinkedTxn": prev.get("LinkedTxn", []),
            "Line": [{"Id": "1", "LineNum": 1, "Amount": Decimal(total), "DetailType": "SalesItemLineDetail"}],
            "SalesTermRef": {"value": "3", "name": "Net 30"},
            **extra,
        }  # fmt: skip
        if due_date:
            obj["DueDate"] = due_date
        return self._save("Invoice", obj)

    def payment(self, id: str, customer: str, total: str, applied: dict[str, str], *,
                txn_date: str = "2026-03-10", currency: str = "USD", touch_invoices: bool = True) -> dict[str, Any]:  # fmt: skip
        obj = {
            "Id": id, "TxnDate": txn_date, "CustomerRef": {"value": customer}, "CurrencyRef": {"value": currency},
            "TotalAmt": Decimal(total), "UnappliedAmt": Decimal(total) - sum(Decimal(v) for v in applied.values()),
            "PaymentRefNum": f"CHK-{id}",
            "Line": [
                {"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": inv, "TxnType": "Invoice"}]}
                for inv, amount in applied.items()
            ],
        }  # fmt: skip
        self._save("Payment", obj)
        if touch_invoices:  # QBO updates the invoices' Balance and LinkedTxn too
            for inv_id in applied:
                inv = self.objects["Invoice"][inv_id]
                links = [t for t in inv.get("LinkedTxn", []) if t["TxnId"] != id]
                links.append({"TxnId": id, "TxnType": "Payment"})
                self.invoice(inv_id, inv["CustomerRef"]["value"], str(inv["TotalAmt"]), txn_date=inv["TxnDate"],
                             due_date=inv.get("DueDate"), currency=inv["CurrencyRef"]["value"],
                             doc_number=inv["DocNumber"], LinkedTxn=links)  # fmt: skip
        return obj

    def void_invoice(self, id: str) -> dict[str, Any]:
        inv = self.objects["Invoice"][id]
        inv.update(TotalAmt=Decimal(0), Balance=Decimal(0), PrivateNote="Voided")
        return self._save("Invoice", inv)

    def delete(self, entity: str, id: str) -> None:
        self.objects[entity].pop(id, None)
        self.deleted[entity][id] = self.stamp()

    # ------------------------------------------------------------------ webhooks

    def legacy_webhook(self, changes: list[tuple[str, str, str]]) -> bytes:
        """changes: (entity name, id, operation)"""
        return json.dumps(
            {"eventNotifications": [{"realmId": self.realm, "dataChangeEvent": {"entities": [
                {"name": name, "id": id, "operation": op, "lastUpdated": self.now().isoformat()}
                for name, id, op in changes
            ]}}]}
        ).encode()  # fmt: skip

    def cloudevents_webhook(self, changes: list[tuple[str, str, str]]) -> bytes:
        return json.dumps(
            [
                {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
                 "type": f"qbo.{name.lower()}.{op.lower()}.v1", "datacontenttype": "application/json",
                 "time": self.now().isoformat(), "intuitentityid": id, "intuitaccountid": self.realm, "data": {}}
                for name, id, op in changes
            ]
        ).encode()  # fmt: skip

    @staticmethod
    def sign(body: bytes, verifier_token: str) -> str:
        return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()

    # ------------------------------------------------------------------ the HTTP API

    def _fault(self, status: int, message: str, code: str) -> Response:
        return Response(
            _dumps({"Fault": {"Error": [{"Message": message, "Detail": message, "code": code}], "type": "ValidationFault"},
                    "time": self.now().isoformat()}),
            status_code=status, media_type="application/json",
        )  # fmt: skip

    def _build(self) -> FastAPI:
        app = FastAPI()
        fake = self

        @app.middleware("http")
        async def faults(request: Request, call_next: Any) -> Response:
            fake.requests.append(
                (
                    request.method,
                    unquote_plus(request.url.path + ("?" + request.url.query if request.url.query else "")),
                )
            )
            injected = fake.fail_when(request) if fake.fail_when else None
            if injected is None and fake.fail_next and not request.url.path.startswith("/oauth2"):
                injected = fake.fail_next.pop(0)
            if injected is not None:
                status, headers = injected
                return Response(
                    b'{"fault":"injected"}', status_code=status, headers=headers, media_type="application/json"
                )
            if (
                request.url.path.startswith("/v3/")
                and request.headers.get("authorization") != f"Bearer {fake.access_token}"
            ):
                return Response(
                    b'{"fault":{"error":[{"message":"AuthenticationFailed","code":"3200"}]}}', status_code=401
                )
            return await call_next(request)

        @app.post("/oauth2/v1/tokens/bearer")
        async def token(request: Request) -> Response:
            form = await request.form()
            expected = "Basic " + base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != fake.refresh_token:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            fake.access_token = f"at-{uuid.uuid4().hex[:8]}"
            fake.refresh_token = f"rt-{uuid.uuid4().hex[:8]}"  # rotates: the old one is dead now
            return JSONResponse({"token_type": "bearer", "access_token": fake.access_token, "expires_in": 3600,
                                 "refresh_token": fake.refresh_token, "x_refresh_token_expires_in": 8726400})  # fmt: skip

        @app.get("/v3/company/{realm}/query")
        async def query(realm: str, query: str) -> Response:
            m = re.match(
                r"SELECT \* FROM (\w+)(?: WHERE Id IN \(([^)]*)\))?(?: ORDERBY Id)?(?: STARTPOSITION (\d+))?(?: MAXRESULTS (\d+))?$",
                query.strip(), re.IGNORECASE,
            )  # fmt: skip
            if realm != fake.realm or not m or m.group(1) not in ENTITIES:
                return fake._fault(400, f"QueryParserError: {query}", "4000")
            entity = m.group(1)
            items = sorted(fake.objects[entity].values(), key=lambda o: int(o["Id"]))
            if m.group(2) is not None:
                wanted = {x.strip().strip("'") for x in m.group(2).split(",")}
                items = [o for o in items if o["Id"] in wanted]
            start, size = int(m.group(3) or 1), min(int(m.group(4) or 100), 1000)
            page = items[start - 1 : start - 1 + size]
            body: dict[str, Any] = {"startPosition": start, "maxResults": len(page)}
            if page:
                body[entity] = page
            return Response(
                _dumps({"QueryResponse": body, "time": fake.now().isoformat()}), media_type="application/json"
            )

        @app.get("/v3/company/{realm}/cdc")
        async def cdc(realm: str, entities: str, changedSince: str) -> Response:
            since = datetime.fromisoformat(changedSince)
            blocks = []
            budget = CAP
            for entity in ENTITIES:
                if entity.lower() not in {e.strip().lower() for e in entities.split(",")}:
                    continue
                active = sorted(
                    (
                        o
                        for o in fake.objects[entity].values()
                        if datetime.fromisoformat(o["MetaData"]["LastUpdatedTime"]) > since
                    ),
                    key=lambda o: o["MetaData"]["LastUpdatedTime"],
                )
                gone = [
                    {"domain": "QBO", "status": "Deleted", "Id": id, "MetaData": {"LastUpdatedTime": when.isoformat()}}
                    for id, when in sorted(fake.deleted[entity].items(), key=lambda kv: kv[1]) if when > since
                ]  # fmt: skip
                items = (active + gone)[:budget]  # the cap is shared by every entity in the request
                budget -= len(items)
                block: dict[str, Any] = {"startPosition": 1, "maxResults": len(items)}
                if items:
                    block[entity] = items
                blocks.append(block)
            doc = {"CDCResponse": [{"QueryResponse": blocks}], "time": fake.stamp().isoformat()}
            return Response(_dumps(doc), media_type="application/json")

        @app.get("/v3/company/{realm}/{entity}/{id}")
        async def read(realm: str, entity: str, id: str) -> Response:
            names = {e.lower(): e for e in ENTITIES}
            name = names.get(entity.lower())
            obj = fake.objects.get(name or "", {}).get(id)
            if realm != fake.realm or obj is None:
                return fake._fault(400, "Object Not Found", "610")
            return Response(_dumps({name: obj, "time": fake.now().isoformat()}), media_type="application/json")

        return app
