"""QuickBooks Online: OAuth2 (rotating refresh token), backfill by query pages, incremental by CDC
(narrowing the window when a response hits the 1000-object cap), webhooks legacy + CloudEvents.

Cursor shapes (persisted per tenant):
  {"phase": "backfill", "started_at": iso, "entity": "Invoice", "position": 1}
  {"phase": "cdc", "since": iso}
  {"phase": "cdc", "since": iso, "narrowing": {"run_started": iso, "entity": "Invoice", "since": iso}}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta
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
from ledger_sync.connectors.http import ErpError, ErpHttp
from ledger_sync.domain.records import CreditNoteRecord, CustomerRecord, InvoiceRecord, PaymentRecord

NAME = "quickbooks"
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
API_URL = "https://quickbooks.api.intuit.com"
MINOR_VERSION = "75"
CDC_CAP = 1000
# Backfill and CDC order: what an object references comes before it.
ENTITIES = ("Customer", "Invoice", "CreditMemo", "Payment")
KIND = {"Customer": CUSTOMER, "Invoice": INVOICE, "Payment": PAYMENT, "CreditMemo": CREDIT_NOTE}
ENTITY = {v: k for k, v in KIND.items()}


def _stamp(obj: Mapping[str, Any]) -> datetime | None:
    raw = (obj.get("MetaData") or {}).get("LastUpdatedTime")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw))
    except ValueError:
        raise MappingError(f"MetaData.LastUpdatedTime: not a timestamp: {raw!r}") from None


def _ref(obj: Mapping[str, Any], name: str) -> str:
    value = (obj.get(name) or {}).get("value")
    if not value:
        raise MappingError(f"{name}.value: missing")
    return str(value)


def _date(obj: Mapping[str, Any], name: str, required: bool = True) -> date | None:
    raw = obj.get(name)
    if not raw:
        if required:
            raise MappingError(f"{name}: missing")
        return None
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise MappingError(f"{name}: not a date: {raw!r}") from None


def _voided(obj: Mapping[str, Any]) -> bool:
    # QBO zeroes a voided transaction's amounts and notes it; the object itself stays readable.
    return str(obj.get("PrivateNote") or "").startswith("Voided")


def _validate(model: Any, data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MappingError(f"{where}: {first['msg']}") from None


class QuickBooks:
    name = NAME

    def __init__(self, http: ErpHttp, realm_id: str, config: Mapping[str, Any], now: Any) -> None:
        self.http = http
        self.realm = realm_id
        self.home_currency = str(config.get("home_currency", "USD"))
        self.default_time_zone = str(config.get("default_time_zone", "UTC"))
        self.page_size = int(config.get("page_size", 1000))
        self.cdc_overlap = timedelta(seconds=int(config.get("cdc_overlap_seconds", 60)))
        self.now = now

    # ------------------------------------------------------------------ reading

    def _path(self, suffix: str) -> str:
        return f"/v3/company/{self.realm}/{suffix}"

    async def _get(self, suffix: str, params: dict[str, str]) -> Any:
        return await self.http.json(
            "GET",
            self._path(suffix),
            params={**params, "minorversion": MINOR_VERSION},
            headers={"Accept": "application/json"},
        )

    async def query(self, sql: str) -> dict[str, Any]:
        doc = await self._get("query", {"query": sql})
        return dict((doc or {}).get("QueryResponse") or {})

    async def cdc(self, entities: tuple[str, ...], since: str) -> tuple[list[ErpObject], dict[str, int], str]:
        doc = await self._get("cdc", {"entities": ",".join(entities), "changedSince": since})
        objects: list[ErpObject] = []
        counts: dict[str, int] = {}
        for block in (doc.get("CDCResponse") or [{}])[0].get("QueryResponse") or []:
            for entity in ENTITIES:
                for item in block.get(entity) or []:
                    counts[entity] = counts.get(entity, 0) + 1
                    objects.append(self._object(entity, item))
        return objects, counts, str(doc.get("time") or self.now().isoformat())

    def _object(self, entity: str, item: Mapping[str, Any]) -> ErpObject:
        return ErpObject(KIND[entity], str(item.get("Id", "")), item, deleted=item.get("status") == "Deleted")

    async def pages(self, cursor: dict[str, Any]) -> AsyncIterator[Page]:
        cursor = dict(cursor)
        if cursor.get("phase", "backfill") == "backfill":
            started = cursor.get("started_at") or (self.now() - self.cdc_overlap).isoformat()
            index = ENTITIES.index(cursor.get("entity", ENTITIES[0]))
            position = int(cursor.get("position", 1))
            while index < len(ENTITIES):
                entity = ENTITIES[index]
                found = await self.query(
                    f"SELECT * FROM {entity} ORDERBY Id STARTPOSITION {position} MAXRESULTS {self.page_size}"
                )
                items = found.get(entity) or []
                position += len(items)
                if len(items) < self.page_size:
                    index, position = index + 1, 1
                nxt: dict[str, Any] = (
                    {"phase": "backfill", "started_at": started, "entity": ENTITIES[index], "position": position}
                    if index < len(ENTITIES)
                    else {"phase": "cdc", "since": started}
                )
                yield Page([self._object(entity, i) for i in items], nxt)
            cursor = {"phase": "cdc", "since": started}

        since = cursor["since"]
        narrowing = cursor.get("narrowing")
        if narrowing is None:
            objects, counts, server_time = await self.cdc(ENTITIES, since)
            if sum(counts.values()) < CDC_CAP:
                yield Page(objects, {"phase": "cdc", "since": self._next_since(server_time)})
                return
            # Capped: the response may be truncated anywhere. Walk each entity on its own, moving the
            # window's start to the newest change seen until a response comes back under the cap.
            narrowing = {"run_started": server_time, "entity": ENTITIES[0], "since": since}
        for entity in ENTITIES[ENTITIES.index(narrowing["entity"]) :]:
            entity_since = narrowing["since"] if entity == narrowing["entity"] else since
            while True:
                objects, counts, _ = await self.cdc((entity,), entity_since)
                if counts.get(entity, 0) < CDC_CAP:
                    following = ENTITIES.index(entity) + 1
                    nxt = (
                        {"phase": "cdc", "since": since,
                         "narrowing": {**narrowing, "entity": ENTITIES[following], "since": since}}
                        if following < len(ENTITIES)
                        else {"phase": "cdc", "since": self._next_since(narrowing["run_started"])}
                    )  # fmt: skip
                    yield Page(objects, nxt)
                    break
                # Active objects come ordered by last update; the newest seen is where the window restarts.
                newest = max((s for o in objects if not o.deleted and (s := _stamp(o.payload))), default=None)
                if newest is None or newest <= datetime.fromisoformat(entity_since):
                    raise ErpError(f"CDC for {entity}: over {CDC_CAP} changes at one instant; run a backfill")
                entity_since = newest.isoformat()
                yield Page(
                    objects,
                    {
                        "phase": "cdc",
                        "since": since,
                        "narrowing": {**narrowing, "entity": entity, "since": entity_since},
                    },
                )

    def _next_since(self, server_time: str) -> str:
        return (datetime.fromisoformat(server_time) - self.cdc_overlap).isoformat()

    async def fetch(self, kind: str, object_id: str) -> ErpObject | None:
        entity = ENTITY[kind]
        try:
            doc = await self._get(f"{entity.lower()}/{object_id}", {})
        except ErpError as exc:
            if exc.status == 400:  # QBO answers "Object Not Found" (code 610) for deleted objects
                return None
            raise
        if not doc or entity not in doc:
            return None
        return self._object(entity, doc[entity])

    async def fetch_open_invoices(self, ids: list[str]) -> list[ErpObject]:
        out: list[ErpObject] = []
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            quoted = ",".join("'" + i.replace("'", "") + "'" for i in chunk)
            found = await self.query(f"SELECT * FROM Invoice WHERE Id IN ({quoted}) MAXRESULTS 1000")
            out += [self._object("Invoice", i) for i in found.get("Invoice") or []]
        return out

    # ------------------------------------------------------------------ mapping (pure)

    def map(self, obj: ErpObject) -> list[Change]:
        p = obj.payload
        if not obj.id:
            raise MappingError("Id: missing")
        stamp = _stamp(p)
        if obj.kind == CUSTOMER:
            if obj.deleted:
                return []  # QBO customers are made inactive, not deleted; keep the history
            country = str((p.get("BillAddr") or {}).get("Country") or "")
            record = _validate(
                CustomerRecord,
                {
                    "id": obj.id,
                    "name": p.get("DisplayName") or p.get("CompanyName") or "",
                    "email": (p.get("PrimaryEmailAddr") or {}).get("Address"),
                    "phone": (p.get("PrimaryPhone") or {}).get("FreeFormNumber"),
                    "country": country if len(country) == 2 else None,
                    "time_zone": self.default_time_zone,
                },
            )
            return [UpsertCustomer(record, stamp=stamp)]
        if obj.kind == INVOICE:
            if obj.deleted:
                return [InvoiceGone(obj.id, "deleted in QuickBooks", stamp=stamp)]
            if _voided(p):
                return [InvoiceGone(obj.id, "voided in QuickBooks", stamp=stamp)]
            record = _validate(
                InvoiceRecord,
                {
                    "id": obj.id,
                    "customer_id": _ref(p, "CustomerRef"),
                    "number": p.get("DocNumber") or obj.id,
                    "currency": (p.get("CurrencyRef") or {}).get("value") or self.home_currency,
                    "total": parse_decimal(p.get("TotalAmt"), "TotalAmt"),
                    "issue_date": _date(p, "TxnDate"),
                    "due_date": _date(p, "DueDate", required=False),
                    "terms": (p.get("SalesTermRef") or {}).get("name") or (p.get("SalesTermRef") or {}).get("value"),
                },
            )
            linked = tuple(str(t["TxnId"]) for t in p.get("LinkedTxn") or [] if t.get("TxnType") == "Payment")
            balance = p.get("Balance")
            return [
                UpsertInvoice(
                    record,
                    erp_balance=parse_decimal(balance, "Balance") if balance is not None else None,
                    linked_payments=linked,
                    stamp=stamp,
                )
            ]
        if obj.kind == PAYMENT:
            if obj.deleted:
                return [PaymentGone(obj.id, "deleted in QuickBooks", stamp=stamp)]
            if _voided(p):
                return [PaymentGone(obj.id, "voided in QuickBooks", stamp=stamp)]
            allocations: list[dict[str, Any]] = []
            for n, line in enumerate(p.get("Line") or []):
                invoices = [t for t in line.get("LinkedTxn") or [] if t.get("TxnType") == "Invoice"]
                if invoices:
                    allocations.append(
                        {
                            "invoice_id": str(invoices[0]["TxnId"]),
                            "amount": parse_decimal(line.get("Amount"), f"Line[{n}].Amount"),
                        }
                    )
            total = parse_decimal(p.get("TotalAmt"), "TotalAmt")
            if sum((a["amount"] for a in allocations), start=total * 0) > total:
                raise MappingError("Line: applies more than TotalAmt (credit memos applied through a payment)")
            record = _validate(
                PaymentRecord,
                {
                    "id": obj.id,
                    "customer_id": _ref(p, "CustomerRef"),
                    "currency": (p.get("CurrencyRef") or {}).get("value") or self.home_currency,
                    "amount": total,
                    "received_on": _date(p, "TxnDate"),
                    "reference": p.get("PaymentRefNum"),
                    "allocations": allocations,
                },
            )
            return [UpsertPayment(record, stamp=stamp)]
        if obj.kind == CREDIT_NOTE:
            if obj.deleted or _voided(p):
                return [CreditNoteGone(obj.id, stamp=stamp)]
            record = _validate(
                CreditNoteRecord,
                {
                    "id": obj.id,
                    "customer_id": _ref(p, "CustomerRef"),
                    "number": p.get("DocNumber"),
                    "currency": (p.get("CurrencyRef") or {}).get("value") or self.home_currency,
                    "total": parse_decimal(p.get("TotalAmt"), "TotalAmt"),
                    "issued_on": _date(p, "TxnDate"),
                },
            )
            return [UpsertCreditNote(record, stamp=stamp)]
        raise MappingError(f"unsupported object kind {obj.kind!r}")


class QuickBooksWebhooks:
    """`intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)); legacy and CloudEvents payloads."""

    header = "intuit-signature"

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: datetime | None = None) -> None:
        presented = headers.get(self.header, "")
        expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        if not secret or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise SignatureError("intuit-signature does not match")

    def notices(self, body: bytes) -> list[Notice]:
        doc = json.loads(body)
        out: list[Notice] = []
        if isinstance(doc, dict) and "eventNotifications" in doc:
            for note in doc["eventNotifications"]:
                realm = str(note.get("realmId", ""))
                for e in (note.get("dataChangeEvent") or {}).get("entities") or []:
                    if e.get("name") in KIND:
                        out.append(Notice(realm, KIND[e["name"]], str(e["id"]), str(e.get("operation", "Update"))))
            return out
        if isinstance(doc, list):  # CloudEvents: [{"type": "qbo.invoice.updated.v1", "intuitentityid": ..}]
            by_lower = {k.lower(): k for k in KIND}
            for ev in doc:
                parts = str(ev.get("type", "")).split(".")
                if len(parts) >= 3 and parts[1] in by_lower:
                    out.append(
                        Notice(
                            str(ev.get("intuitaccountid", "")),
                            KIND[by_lower[parts[1]]],
                            str(ev.get("intuitentityid", "")),
                            parts[2].capitalize(),
                        )
                    )
            return out
        raise ValueError("neither a legacy nor a CloudEvents notification")
