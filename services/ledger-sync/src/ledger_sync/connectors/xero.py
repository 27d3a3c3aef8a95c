"""Xero Accounting: OAuth2 (rotating refresh token), `xero-tenant-id` on every call, backfill and
incremental sync with `If-Modified-Since` and `page=` (100 per page), payments polled (Xero sends no
payment webhooks), MS JSON dates, webhooks with `x-xero-signature` and the intent-to-receive handshake.

Cursor: {"entity": "Invoices", "page": 3, "modified_since": iso | None, "run_started": iso}
        {"modified_since": iso}   (between runs)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from ledger_sync.connectors.base import (
    CREDIT_NOTE,
    CUSTOMER,
    INVOICE,
    PAYMENT,
    Change,
    CreditNoteGone,
    ErpObject,
    InvoiceGone,
    MappingError,
    Notice,
    Page,
    PaymentGone,
    SignatureError,
    UpsertCreditNote,
    UpsertCustomer,
    UpsertInvoice,
    UpsertPayment,
    parse_decimal,
)
from ledger_sync.connectors.http import ErpHttp
from ledger_sync.domain.records import CreditNoteRecord, CustomerRecord, InvoiceRecord, PaymentRecord

NAME = "xero"
API_URL = "https://api.xero.com"
TOKEN_URL = "https://identity.xero.com/connect/token"
PAGE_SIZE = 100
# (endpoint, collection key, kind, where filter): what a record refers to comes first.
ENDPOINTS = (
    ("Contacts", CUSTOMER, "IsCustomer==true"),
    ("Invoices", INVOICE, 'Type=="ACCREC"'),
    ("CreditNotes", CREDIT_NOTE, 'Type=="ACCRECCREDIT"'),
    ("Payments", PAYMENT, 'PaymentType=="ACCRECPAYMENT"'),
)
ENDPOINT_OF = {kind: endpoint for endpoint, kind, _ in ENDPOINTS}
ID_FIELD = {CUSTOMER: "ContactID", INVOICE: "InvoiceID", CREDIT_NOTE: "CreditNoteID", PAYMENT: "PaymentID"}
CATEGORY = {"INVOICE": INVOICE, "CONTACT": CUSTOMER, "CREDITNOTE": CREDIT_NOTE}
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def ms_json_datetime(value: Any, where: str) -> datetime:
    """`/Date(1511827200000+0000)/` -> an aware UTC datetime (the offset is informational: ms are UTC)."""
    m = _MS_DATE.match(str(value or ""))
    if not m:
        raise MappingError(f"{where}: not a Microsoft JSON date: {value!r}")
    return datetime.fromtimestamp(int(m.group(1)) / 1000, UTC)


def _date(value: Any, where: str) -> date:
    return ms_json_datetime(value, where).date()


def _validate(model: Any, data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MappingError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


def _http_date(iso: str) -> str:
    # Xero takes If-Modified-Since as a UTC timestamp without zone, e.g. 2026-03-02T09:00:00
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class Xero:
    name = NAME

    def __init__(self, http: ErpHttp, config: Mapping[str, Any], now: Any) -> None:
        self.http = http
        self.default_time_zone = str(config.get("default_time_zone", "UTC"))
        self.overlap = timedelta(seconds=int(config.get("overlap_seconds", 60)))
        self.now = now

    async def _get(self, path: str, params: dict[str, Any] | None = None, modified_since: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if modified_since:
            headers["If-Modified-Since"] = _http_date(modified_since)
        return await self.http.json("GET", f"/api.xro/2.0/{path}", params=params or {}, headers=headers)

    def _object(self, kind: str, item: Mapping[str, Any]) -> ErpObject:
        status = str(item.get("Status") or item.get("ContactStatus") or "")
        return ErpObject(kind, str(item.get(ID_FIELD[kind], "")), item, deleted=status in ("DELETED", "ARCHIVED"))

    async def pages(self, cursor: dict[str, Any]) -> AsyncIterator[Page]:
        since = cursor.get("modified_since")
        run_started = cursor.get("run_started") or (self.now() - self.overlap).isoformat()
        names = [e for e, _, _ in ENDPOINTS]
        index = names.index(cursor.get("entity", names[0]))
        page = int(cursor.get("page", 1))
        while index < len(ENDPOINTS):
            endpoint, kind, where = ENDPOINTS[index]
            doc = await self._get(endpoint, {"page": page, "where": where}, since) or {}
            items = doc.get(endpoint) or []
            pagination = doc.get("pagination") or {}
            last = page >= int(pagination.get("pageCount", 0) or 0) if pagination else len(items) < PAGE_SIZE
            if last:
                index, page = index + 1, 1
            else:
                page += 1
            nxt: dict[str, Any] = (
                {"entity": ENDPOINTS[index][0], "page": page, "modified_since": since, "run_started": run_started}
                if index < len(ENDPOINTS)
                else {"modified_since": run_started}
            )
            yield Page([self._object(kind, i) for i in items], nxt)

    async def fetch(self, kind: str, object_id: str) -> ErpObject | None:
        endpoint = ENDPOINT_OF.get(kind)
        if endpoint is None:
            return None
        doc = await self._get(f"{endpoint}/{object_id}")
        items = (doc or {}).get(endpoint) or []
        return self._object(kind, items[0]) if items else None

    async def fetch_open_invoices(self, ids: list[str]) -> list[ErpObject]:
        out: list[ErpObject] = []
        for start in range(0, len(ids), 50):
            doc = await self._get("Invoices", {"IDs": ",".join(ids[start : start + 50])}) or {}
            out += [self._object(INVOICE, i) for i in doc.get("Invoices") or []]
        return out

    # ------------------------------------------------------------------ mapping (pure)

    def map(self, obj: ErpObject) -> list[Change]:
        p = obj.payload
        if not obj.id:
            raise MappingError(f"{ID_FIELD.get(obj.kind, 'id')}: missing")
        stamp = ms_json_datetime(p["UpdatedDateUTC"], "UpdatedDateUTC") if p.get("UpdatedDateUTC") else None
        status = str(p.get("Status") or "")
        if obj.kind == CUSTOMER:
            if obj.deleted:
                return []
            phones = [ph for ph in p.get("Phones") or [] if ph.get("PhoneNumber")]
            phone = None
            if phones:
                ph = phones[0]
                phone = " ".join(
                    x for x in (ph.get("PhoneCountryCode"), ph.get("PhoneAreaCode"), ph.get("PhoneNumber")) if x
                )
            countries = [a.get("Country") for a in p.get("Addresses") or [] if a.get("Country")]
            record = _validate(
                CustomerRecord,
                {
                    "id": obj.id,
                    "name": p.get("Name") or "",
                    "email": p.get("EmailAddress") or None,
                    "phone": phone,
                    "country": countries[0] if countries and len(countries[0]) == 2 else None,
                    "time_zone": self.default_time_zone,
                },
            )
            return [UpsertCustomer(record, stamp=stamp)]
        if obj.kind == INVOICE:
            if p.get("Type") not in (None, "ACCREC"):
                return []  # bills (ACCPAY) are not receivables
            if status in ("VOIDED", "DELETED"):
                return [InvoiceGone(obj.id, f"{status.lower()} in Xero", stamp=stamp)]
            if status in ("DRAFT", "SUBMITTED"):
                return []  # not approved: not owed yet
            record = _validate(
                InvoiceRecord,
                {
                    "id": obj.id,
                    "customer_id": str((p.get("Contact") or {}).get("ContactID") or ""),
                    "number": p.get("InvoiceNumber") or obj.id,
                    "currency": p.get("CurrencyCode") or "",
                    "total": parse_decimal(p.get("Total"), "Total"),
                    "issue_date": _date(p.get("Date"), "Date"),
                    "due_date": _date(p.get("DueDate"), "DueDate") if p.get("DueDate") else None,
                },
            )
            linked = tuple(str(x["PaymentID"]) for x in p.get("Payments") or [] if x.get("PaymentID"))
            due = p.get("AmountDue")
            return [
                UpsertInvoice(
                    record,
                    erp_balance=parse_decimal(due, "AmountDue") if due is not None else None,
                    linked_payments=linked,
                    stamp=stamp,
                )
            ]
        if obj.kind == PAYMENT:
            if status == "DELETED" or obj.deleted:
                return [PaymentGone(obj.id, "deleted in Xero", stamp=stamp)]
            if p.get("PaymentType") not in (None, "ACCRECPAYMENT"):
                return []
            invoice = p.get("Invoice") or {}
            amount = parse_decimal(p.get("Amount"), "Amount")
            record = _validate(
                PaymentRecord,
                {
                    "id": obj.id,
                    "customer_id": str((invoice.get("Contact") or {}).get("ContactID") or ""),
                    "currency": invoice.get("CurrencyCode") or "",
                    "amount": amount,
                    "received_on": _date(p.get("Date"), "Date"),
                    "reference": p.get("Reference"),
                    "allocations": [{"invoice_id": str(invoice.get("InvoiceID") or ""), "amount": amount}],
                },
            )
            return [UpsertPayment(record, stamp=stamp)]
        if obj.kind == CREDIT_NOTE:
            if status in ("VOIDED", "DELETED") or obj.deleted:
                return [CreditNoteGone(obj.id, stamp=stamp)]
            if status in ("DRAFT", "SUBMITTED") or p.get("Type") not in (None, "ACCRECCREDIT"):
                return []
            record = _validate(
                CreditNoteRecord,
                {
                    "id": obj.id,
                    "customer_id": str((p.get("Contact") or {}).get("ContactID") or ""),
                    "number": p.get("CreditNoteNumber"),
                    "currency": p.get("CurrencyCode") or "",
                    "total": parse_decimal(p.get("Total"), "Total"),
                    "issued_on": _date(p.get("Date"), "Date"),
                    "allocations": [
                        {"invoice_id": str((a.get("Invoice") or {}).get("InvoiceID") or ""),
                         "amount": parse_decimal(a.get("Amount"), f"Allocations[{n}].Amount")}
                        for n, a in enumerate(p.get("Allocations") or [])
                    ],
                },
            )  # fmt: skip
            return [UpsertCreditNote(record, stamp=stamp)]
        raise MappingError(f"unsupported object kind {obj.kind!r}")


class XeroWebhooks:
    """`x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)). The intent-to-receive handshake is
    just a correctly or wrongly signed `{"events": []}`: 200 or 401, empty body."""

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: datetime | None = None) -> None:
        expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        if not secret or not hmac.compare_digest(headers.get("x-xero-signature", "").encode(), expected.encode()):
            raise SignatureError("x-xero-signature does not match")

    def notices(self, body: bytes) -> list[Notice]:
        doc = json.loads(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
            raise ValueError("not a Xero webhook payload")
        out = []
        for ev in doc["events"]:
            kind = CATEGORY.get(str(ev.get("eventCategory", "")).upper())
            if kind and ev.get("resourceId"):
                out.append(
                    Notice(str(ev.get("tenantId", "")), kind, str(ev["resourceId"]), str(ev.get("eventType", "UPDATE")))
                )
        return out
