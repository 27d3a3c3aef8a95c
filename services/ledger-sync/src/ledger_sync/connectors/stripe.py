"""Stripe: customers, invoices and credit notes by list (backfill) and by the events list (incremental),
and by webhook (`Stripe-Signature`, 300 s tolerance). An invoice's `amount_paid` becomes one payment
(`<invoice id>:paid`) allocated to it, so balance = total - paid - credit notes, as Stripe's
`amount_remaining` says.

Cursor: {"phase": "backfill", "list": "invoices", "starting_after": id, "started_at": unix}
        {"phase": "events", "created_gt": unix}
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from dunning_events.money import ISO_CURRENCIES, from_minor
from ledger_sync.connectors.base import (
    CREDIT_NOTE,
    CUSTOMER,
    INVOICE,
    PAYMENT,
    Change,
    CreditNoteGone,
    ErpObject,
    MappingError,
    Notice,
    Page,
    SignatureError,
    UpsertCreditNote,
    UpsertCustomer,
    UpsertInvoice,
    UpsertPayment,
)
from ledger_sync.connectors.http import ErpHttp
from ledger_sync.domain.records import CreditNoteRecord, CustomerRecord, InvoiceRecord, PaymentRecord

NAME = "stripe"
API_URL = "https://api.stripe.com"
TOLERANCE_S = 300
LISTS = (("customers", CUSTOMER), ("invoices", INVOICE), ("credit_notes", CREDIT_NOTE))
PATHS = {CUSTOMER: "customers", INVOICE: "invoices", CREDIT_NOTE: "credit_notes"}
KIND_OF_OBJECT = {"customer": CUSTOMER, "invoice": INVOICE, "credit_note": CREDIT_NOTE}


def _id(value: Any, where: str) -> str:
    """Stripe references are an id, or the expanded object carrying one."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if not value or not isinstance(value, str):
        raise MappingError(f"{where}: missing")
    return value


def _day(unix: Any, where: str) -> date:
    if not isinstance(unix, int) or isinstance(unix, bool):
        raise MappingError(f"{where}: not a unix timestamp: {unix!r}")
    return datetime.fromtimestamp(unix, UTC).date()


def _currency(p: Mapping[str, Any]) -> str:
    code = str(p.get("currency") or "").upper()
    if code not in ISO_CURRENCIES:
        raise MappingError(f"currency: unknown currency {p.get('currency')!r}")
    return code


def _minor(p: Mapping[str, Any], name: str, currency: str) -> Decimal:
    value = p.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MappingError(f"{name}: not an amount in minor units: {value!r}")
    return from_minor(value, currency)


def _validate(model: Any, data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MappingError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


class Stripe:
    name = NAME

    def __init__(self, http: ErpHttp, config: Mapping[str, Any], now: Any) -> None:
        self.http = http
        self.default_time_zone = str(config.get("default_time_zone", "UTC"))
        self.page_size = int(config.get("page_size", 100))
        self.now = now

    async def _list(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.http.json("GET", f"/v1/{path}", params={"limit": self.page_size, **params}) or {})

    def _object(self, kind: str, item: Mapping[str, Any], stamp: int | None = None) -> ErpObject:
        payload = dict(item)
        if stamp is not None:
            payload["__event_created"] = stamp  # the event's time orders out-of-order deliveries
        return ErpObject(kind, str(item.get("id", "")), payload, deleted=bool(item.get("deleted")))

    async def pages(self, cursor: dict[str, Any]) -> AsyncIterator[Page]:
        if cursor.get("phase", "backfill") == "backfill":
            started = int(cursor.get("started_at") or self.now().timestamp())
            names = [name for name, _ in LISTS]
            index = names.index(cursor.get("list", names[0]))
            after = cursor.get("starting_after")
            while index < len(LISTS):
                name, kind = LISTS[index]
                doc = await self._list(name, {"starting_after": after} if after else {})
                items = doc.get("data") or []
                after = items[-1]["id"] if items else after
                if not doc.get("has_more"):
                    index, after = index + 1, None
                nxt: dict[str, Any] = (
                    {"phase": "backfill", "list": LISTS[index][0], "starting_after": after, "started_at": started}
                    if index < len(LISTS)
                    else {"phase": "events", "created_gt": started - 60}
                )
                yield Page([self._object(kind, i) for i in items], nxt)
            cursor = {"phase": "events", "created_gt": started - 60}

        # Events come newest first: gather the window, then apply oldest first. The cursor moves only
        # once the whole window is applied, so an interruption replays it (idempotently), never skips.
        created_gt = int(cursor["created_gt"])
        events: list[Mapping[str, Any]] = []
        after = None
        while True:
            doc = await self._list(
                "events", {"created[gt]": created_gt, **({"starting_after": after} if after else {})}
            )
            batch = doc.get("data") or []
            events += batch
            if not doc.get("has_more") or not batch:
                break
            after = batch[-1]["id"]
        events.sort(key=lambda e: (e.get("created", 0), e.get("id", "")))
        objects = []
        for ev in events:
            obj = (ev.get("data") or {}).get("object") or {}
            object_kind = KIND_OF_OBJECT.get(str(obj.get("object")))
            if object_kind:
                objects.append(self._object(object_kind, obj, int(ev.get("created", 0))))
        newest = max((int(e.get("created", 0)) for e in events), default=created_gt)
        for start in range(0, max(len(objects), 1), 200):
            last = start + 200 >= len(objects)
            yield Page(
                objects[start : start + 200], {"phase": "events", "created_gt": newest - 60 if last else created_gt}
            )

    async def fetch(self, kind: str, object_id: str) -> ErpObject | None:
        if kind not in PATHS:
            return None
        doc = await self.http.json("GET", f"/v1/{PATHS[kind]}/{object_id}")
        return self._object(kind, doc) if doc and not doc.get("deleted") else None

    async def fetch_open_invoices(self, ids: list[str]) -> list[ErpObject]:
        found = [await self.fetch(INVOICE, i) for i in ids]
        return [o for o in found if o is not None]

    # ------------------------------------------------------------------ mapping (pure)

    def map(self, obj: ErpObject) -> list[Change]:
        p = obj.payload
        if not obj.id:
            raise MappingError("id: missing")
        created = p.get("__event_created")
        stamp = datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None
        if obj.kind == CUSTOMER:
            if obj.deleted:
                return []
            country = str((p.get("address") or {}).get("country") or "")
            locales = p.get("preferred_locales") or []
            record = _validate(
                CustomerRecord,
                {
                    "id": obj.id,
                    "name": p.get("name") or p.get("email") or obj.id,
                    "email": p.get("email"),
                    "phone": p.get("phone"),
                    "country": country if len(country) == 2 else None,
                    "locale": locales[0] if locales else "en",
                    "time_zone": self.default_time_zone,
                },
            )
            return [UpsertCustomer(record, stamp=stamp)]
        if obj.kind == INVOICE:
            status = p.get("status")
            if status == "draft" or obj.deleted:
                return []  # a draft is not a receivable yet
            currency = _currency(p)
            finalized = (p.get("status_transitions") or {}).get("finalized_at") or p.get("created")
            due = p.get("due_date")
            record = _validate(
                InvoiceRecord,
                {
                    "id": obj.id,
                    "customer_id": _id(p.get("customer"), "customer"),
                    "number": p.get("number") or obj.id,
                    "currency": currency,
                    "total": _minor(p, "total", currency),
                    "issue_date": _day(finalized, "status_transitions.finalized_at"),
                    "due_date": _day(due, "due_date") if due is not None else None,
                    "terms": p.get("collection_method"),
                },
            )
            close = {"void": "void", "uncollectible": "written_off"}.get(str(status))
            changes: list[Change] = [
                UpsertInvoice(
                    record,
                    close=close,
                    reason=f"{status} in Stripe" if close else None,
                    erp_balance=_minor(p, "amount_remaining", currency) if "amount_remaining" in p else None,
                    linked_payments=(f"{obj.id}:paid",),
                    stamp=stamp,
                )
            ]
            paid = _minor(p, "amount_paid", currency) if "amount_paid" in p else Decimal(0)
            if paid > 0 and close != "void":
                paid_at = (p.get("status_transitions") or {}).get("paid_at") or finalized
                payment = _validate(
                    PaymentRecord,
                    {
                        "id": f"{obj.id}:paid",
                        "customer_id": record.customer_id,
                        "currency": currency,
                        "amount": paid,
                        "received_on": _day(paid_at, "status_transitions.paid_at"),
                        "reference": p.get("charge") if isinstance(p.get("charge"), str) else None,
                        "allocations": [{"invoice_id": obj.id, "amount": paid}],
                    },
                )
                # written off after part payment: the paid part still counts, but goes in first
                if close == "written_off":
                    changes = [
                        UpsertInvoice(record, erp_balance=None, stamp=stamp),
                        UpsertPayment(payment, stamp=stamp),
                        changes[0],
                    ]
                else:
                    changes.append(UpsertPayment(payment, stamp=stamp))
            return changes
        if obj.kind == CREDIT_NOTE:
            if p.get("status") == "void" or obj.deleted:
                return [CreditNoteGone(obj.id, stamp=stamp)]
            currency = _currency(p)
            amount = _minor(p, "amount", currency)
            # Only the part credited before payment lowers what is owed; the rest was refunded or banked.
            pre = _minor(p, "pre_payment_amount", currency) if "pre_payment_amount" in p else amount
            invoice_id = _id(p.get("invoice"), "invoice")
            record = _validate(
                CreditNoteRecord,
                {
                    "id": obj.id,
                    "customer_id": _id(p.get("customer"), "customer"),
                    "number": p.get("number"),
                    "currency": currency,
                    "total": amount,
                    "issued_on": _day(p.get("created"), "created"),
                    "allocations": [{"invoice_id": invoice_id, "amount": pre}] if pre > 0 else [],
                },
            )
            return [UpsertCreditNote(record, stamp=stamp)]
        if obj.kind == PAYMENT:
            return []
        raise MappingError(f"unsupported object kind {obj.kind!r}")


class StripeWebhooks:
    """`Stripe-Signature: t=<unix>,v1=<hex>`: HMAC-SHA256(endpoint secret, "{t}.{raw body}"), t within 300 s."""

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: datetime | None = None) -> None:
        header = headers.get("stripe-signature", "")
        parts = [kv.split("=", 1) for kv in header.split(",") if "=" in kv]
        timestamps = [v for k, v in parts if k.strip() == "t"]
        signatures = [v for k, v in parts if k.strip() == "v1"]
        if not secret or not timestamps or not signatures or not timestamps[0].isdigit():
            raise SignatureError("Stripe-Signature missing or malformed")
        t = timestamps[0]
        expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected, s.strip()) for s in signatures):
            raise SignatureError("no v1 signature matches")
        current = (now or datetime.now(UTC)).timestamp()
        if abs(current - int(t)) > TOLERANCE_S:
            raise SignatureError("timestamp outside the tolerance (replayed?)")

    def notices(self, body: bytes) -> list[Notice]:
        ev = json.loads(body)
        if not isinstance(ev, dict) or ev.get("object") != "event":
            raise ValueError("not a Stripe event")
        obj = (ev.get("data") or {}).get("object") or {}
        kind = KIND_OF_OBJECT.get(str(obj.get("object")))
        if kind is None:
            return []
        payload = {**obj, "__event_created": int(ev.get("created", 0))}
        return [Notice(ev.get("account"), kind, str(obj.get("id", "")), str(ev.get("type", "")), payload)]
