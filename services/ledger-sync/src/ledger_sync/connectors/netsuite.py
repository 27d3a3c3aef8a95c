"""NetSuite (SuiteTalk REST): customers and invoices by SuiteQL, customer payments by record queries
(`q=lastModifiedDate ON_OR_AFTER "..."`, then each record with `expandSubResources=true`), OAuth 1.0a
Token-Based Authentication signed HMAC-SHA256. NetSuite has no native webhooks: it is polled.

Dates in these filters have day granularity, so each run re-reads the day it started in (inclusive
ON_OR_AFTER / >=); re-applying is idempotent.

Cursor: {"entity": "invoice", "offset": 1000, "since": "YYYY-MM-DD" | None, "run_started": "YYYY-MM-DD"}
        {"since": "YYYY-MM-DD"}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

import httpx
from authlib.oauth1 import ClientAuth
from authlib.oauth1.rfc5849.signature import generate_signature_base_string
from authlib.oauth1.rfc5849.util import escape
from pydantic import ValidationError

from ledger_sync.connectors.base import (
    CUSTOMER,
    INVOICE,
    PAYMENT,
    Change,
    ErpObject,
    InvoiceGone,
    MappingError,
    Page,
    PaymentGone,
    UpsertCustomer,
    UpsertInvoice,
    UpsertPayment,
    parse_decimal,
)
from ledger_sync.connectors.http import ErpHttp
from ledger_sync.domain.records import CustomerRecord, InvoiceRecord, PaymentRecord

NAME = "netsuite"
ENTITIES = ("customer", "invoice", "payment")
# NetSuite's first currency ids; an account with others maps them in config `currency_ids`.
DEFAULT_CURRENCY_IDS = {"1": "USD", "2": "GBP", "3": "CAD", "4": "EUR"}


def hmac_sha256_signature(base_string: str, client_secret: str | None, token_secret: str | None) -> str:
    key = f"{escape(client_secret or '')}&{escape(token_secret or '')}"
    return base64.b64encode(hmac.new(key.encode(), base_string.encode(), hashlib.sha256).digest()).decode()


def _sign_hmac_sha256(client: Any, request: Any) -> str:
    return hmac_sha256_signature(generate_signature_base_string(request), client.client_secret, client.token_secret)


# authlib signs HMAC-SHA1 out of the box; NetSuite TBA wants HMAC-SHA256.
ClientAuth.register_signature_method("HMAC-SHA256", _sign_hmac_sha256)


class OAuth1TokenBased:
    """OAuth 1.0a TBA: consumer key/secret (the integration) + token id/secret (the user), realm = account id."""

    def __init__(
        self, *, account: str, consumer_key: str, consumer_secret: str, token_id: str, token_secret: str
    ) -> None:
        self.client = ClientAuth(
            consumer_key, client_secret=consumer_secret, token=token_id, token_secret=token_secret,
            signature_method="HMAC-SHA256", realm=account,
        )  # fmt: skip

    async def apply(self, request: httpx.Request) -> None:
        body = request.content if request.headers.get("content-type", "").startswith("application/x-www-form") else b""
        _, headers, _ = self.client.prepare(request.method, str(request.url), dict(request.headers), body)
        request.headers["Authorization"] = headers["Authorization"]

    async def refresh(self, client: httpx.AsyncClient) -> bool:
        return False  # TBA tokens do not expire by time; a 401 is final


def rest_host(account: str) -> str:
    return f"https://{account.lower().replace('_', '-')}.suitetalk.api.netsuite.com"


def _validate(model: Any, data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MappingError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


def _date(value: Any, where: str, required: bool = True) -> date | None:
    if not value:
        if required:
            raise MappingError(f"{where}: missing")
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise MappingError(f"{where}: not a YYYY-MM-DD date: {value!r}") from None


class NetSuite:
    name = NAME

    def __init__(self, http: ErpHttp, config: Mapping[str, Any], now: Any) -> None:
        self.http = http
        self.page_size = int(config.get("page_size", 1000))
        self.currency_ids = {
            **DEFAULT_CURRENCY_IDS,
            **{str(k): v for k, v in (config.get("currency_ids") or {}).items()},
        }
        self.default_time_zone = str(config.get("default_time_zone", "UTC"))
        self.now = now

    async def suiteql(self, q: str, offset: int) -> dict[str, Any]:
        return dict(
            await self.http.json(
                "POST", "/services/rest/query/v1/suiteql", params={"limit": self.page_size, "offset": offset},
                json={"q": q}, headers={"Prefer": "transient"},
            ) or {}
        )  # fmt: skip

    @staticmethod
    def _filter(column: str, since: str | None) -> str:
        return f" AND {column} >= TO_DATE('{since}', 'YYYY-MM-DD')" if since else ""

    def _query(self, entity: str, since: str | None) -> str:
        if entity == "customer":
            return (
                "SELECT id, entityid, companyname, email, phone, TO_CHAR(lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS lastmodifieddate "
                f"FROM customer WHERE isinactive = 'F'{self._filter('lastmodifieddate', since)} ORDER BY id"
            )
        return (
            "SELECT t.id, t.tranid, TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, TO_CHAR(t.duedate, 'YYYY-MM-DD') AS duedate, "
            "t.entity, t.currency, t.foreigntotal, t.foreignamountremaining, BUILTIN.DF(t.status) AS status, "
            "TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS lastmodifieddate "
            f"FROM transaction t WHERE t.type = 'CustInvc'{self._filter('t.lastmodifieddate', since)} ORDER BY t.id"
        )

    async def pages(self, cursor: dict[str, Any]) -> AsyncIterator[Page]:
        since = cursor.get("since")
        run_started = cursor.get("run_started") or self.now().date().isoformat()
        index = ENTITIES.index(cursor.get("entity", ENTITIES[0]))
        offset = int(cursor.get("offset", 0))
        while index < len(ENTITIES):
            entity = ENTITIES[index]
            if entity == "payment":
                objects, has_more = await self._payments(since, offset)
            else:
                doc = await self.suiteql(self._query(entity, since), offset)
                objects = [ErpObject(entity, str(i.get("id", "")), i) for i in doc.get("items") or []]
                has_more = bool(doc.get("hasMore"))
            offset += self.page_size
            if not has_more:
                index, offset = index + 1, 0
            nxt: dict[str, Any] = (
                {"entity": ENTITIES[index], "offset": offset, "since": since, "run_started": run_started}
                if index < len(ENTITIES)
                else {"since": run_started}
            )
            yield Page(objects, nxt)

    async def _payments(self, since: str | None, offset: int) -> tuple[list[ErpObject], bool]:
        params: dict[str, Any] = {"limit": self.page_size, "offset": offset}
        if since:
            params["q"] = f'lastModifiedDate ON_OR_AFTER "{date.fromisoformat(since).strftime("%m/%d/%Y")}"'
        doc = await self.http.json("GET", "/services/rest/record/v1/customerpayment", params=params) or {}
        objects = []
        for item in doc.get("items") or []:
            found = await self.fetch(PAYMENT, str(item.get("id")))
            objects.append(found or ErpObject(PAYMENT, str(item.get("id")), {}, deleted=True))
        return objects, bool(doc.get("hasMore"))

    async def fetch(self, kind: str, object_id: str) -> ErpObject | None:
        path = {CUSTOMER: "customer", INVOICE: "invoice", PAYMENT: "customerpayment"}.get(kind)
        if path is None:
            return None
        if kind == PAYMENT:
            doc = await self.http.json(
                "GET", f"/services/rest/record/v1/{path}/{object_id}", params={"expandSubResources": "true"}
            )
            return ErpObject(PAYMENT, object_id, doc) if doc else None
        safe = "".join(ch for ch in object_id if ch.isdigit())
        doc = await self.suiteql(
            self._query(kind, None).replace(" ORDER BY", f" AND {'t.' if kind == INVOICE else ''}id = {safe} ORDER BY"),
            0,
        )
        items = doc.get("items") or []
        return ErpObject(kind, object_id, items[0]) if items else None

    async def fetch_open_invoices(self, ids: list[str]) -> list[ErpObject]:
        found = [await self.fetch(INVOICE, i) for i in ids]
        return [o for o in found if o is not None]

    def _currency(self, value: Any, where: str) -> str:
        if isinstance(value, Mapping):
            value = value.get("id")
        code = self.currency_ids.get(str(value))
        if code is None:
            raise MappingError(f"{where}: currency id {value!r} is not mapped (config currency_ids)")
        return code

    # ------------------------------------------------------------------ mapping (pure)

    def map(self, obj: ErpObject) -> list[Change]:
        p = obj.payload
        if not obj.id:
            raise MappingError("id: missing")
        raw = p.get("lastmodifieddate") or p.get("lastModifiedDate")
        try:
            stamp = datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else None
            if stamp is not None and stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
        except ValueError:
            raise MappingError(f"lastmodifieddate: not a timestamp: {raw!r}") from None
        if obj.kind == CUSTOMER:
            record = _validate(
                CustomerRecord,
                {"id": obj.id, "name": p.get("companyname") or p.get("entityid") or "", "email": p.get("email") or None,
                 "phone": p.get("phone") or None, "time_zone": self.default_time_zone},
            )  # fmt: skip
            return [UpsertCustomer(record, stamp=stamp)]
        if obj.kind == INVOICE:
            if "Voided" in str(p.get("status") or ""):
                return [InvoiceGone(obj.id, "voided in NetSuite", stamp=stamp)]
            record = _validate(
                InvoiceRecord,
                {"id": obj.id, "customer_id": str(p.get("entity") or ""), "number": p.get("tranid") or obj.id,
                 "currency": self._currency(p.get("currency"), "currency"),
                 "total": parse_decimal(p.get("foreigntotal"), "foreigntotal"),
                 "issue_date": _date(p.get("trandate"), "trandate"),
                 "due_date": _date(p.get("duedate"), "duedate", required=False)},
            )  # fmt: skip
            remaining = p.get("foreignamountremaining")
            return [
                UpsertInvoice(
                    record,
                    erp_balance=parse_decimal(remaining, "foreignamountremaining") if remaining is not None else None,
                    stamp=stamp,
                )
            ]
        if obj.kind == PAYMENT:
            if obj.deleted:
                return [PaymentGone(obj.id, "deleted in NetSuite", stamp=stamp)]
            items = ((p.get("apply") or {}).get("items")) or []
            allocations = [
                {
                    "invoice_id": str((i.get("doc") or {}).get("id") or ""),
                    "amount": parse_decimal(i.get("amount"), f"apply.items[{n}].amount"),
                }
                for n, i in enumerate(items)
                if i.get("apply")
            ]
            record = _validate(
                PaymentRecord,
                {"id": obj.id, "customer_id": str((p.get("customer") or {}).get("id") or ""),
                 "currency": self._currency(p.get("currency"), "currency"),
                 "amount": parse_decimal(p.get("payment"), "payment"), "received_on": _date(p.get("tranDate"), "tranDate"),
                 "reference": p.get("tranId"), "allocations": allocations},
            )  # fmt: skip
            return [UpsertPayment(record, stamp=stamp)]
        raise MappingError(f"unsupported object kind {obj.kind!r}")
