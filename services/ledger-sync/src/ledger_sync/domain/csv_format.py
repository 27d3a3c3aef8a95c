"""The documented CSV column formats for bulk import, and row -> canonical record conversion.

One header row (names case-insensitive, any order, unknown names refused); empty cells mean "not given".
Every problem is reported as (line, column, reason); line 1 is the header.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ledger_sync.domain.records import CustomerRecord, InvoiceRecord, PaymentRecord


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    doc: str


@dataclass(frozen=True)
class CsvError:
    line: int
    column: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "field": self.column, "reason": self.reason}


class CellError(ValueError):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def _bool(column: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise CellError(column, f"expected true or false, got {value!r}")


def _customer(cells: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in cells.items() if k in ("id", "name", "email", "phone", "time_zone",
                                                                  "locale", "country", "segment")}  # fmt: skip
    if "tags" in cells:
        out["tags"] = [t.strip() for t in cells["tags"].split("|") if t.strip()]
    consent = {ch: _bool(f"consent_{ch}", cells[f"consent_{ch}"]) for ch in CHANNELS if f"consent_{ch}" in cells}
    if consent:
        out["consent"] = consent
    if "credit_hold" in cells:
        out["credit_hold"] = _bool("credit_hold", cells["credit_hold"])
    return out


def _invoice(cells: dict[str, str]) -> dict[str, Any]:
    return dict(cells)


def _payment(cells: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in cells.items() if k != "allocations"}
    allocations = []
    for part in cells.get("allocations", "").split("|"):
        if not part.strip():
            continue
        invoice_id, sep, amount = part.strip().rpartition(":")
        if not sep or not invoice_id.strip() or not amount.strip():
            raise CellError("allocations", f"expected invoice_id:amount, got {part.strip()!r}")
        allocations.append({"invoice_id": invoice_id.strip(), "amount": amount.strip()})
    out["allocations"] = allocations
    return out


CHANNELS = ("email", "sms", "voice", "letter", "webhook")


@dataclass(frozen=True)
class CsvFormat:
    kind: str
    record: type[BaseModel]
    columns: tuple[Column, ...]
    build: Callable[[dict[str, str]], dict[str, Any]]

    @property
    def names(self) -> set[str]:
        return {c.name for c in self.columns}

    def column_of(self, loc: tuple[Any, ...]) -> str:
        """Which column a record field came from (pydantic error location or a ledger field path)."""
        head = str(loc[0]) if loc else ""
        head = head.split("[")[0].split(".")[0]
        if self.kind == "customers" and head == "consent" and len(loc) > 1:
            return f"consent_{loc[1]}"
        if head == "contacts":
            return "email"
        return head if head in self.names else (head or "(row)")

    def check_header(self, header: list[str]) -> tuple[list[str], list[CsvError]]:
        names = [h.strip().lower() for h in header]
        errors = [
            CsvError(1, h or f"#{i + 1}", "unknown column" if h else "empty column name")
            for i, h in enumerate(names)
            if h not in self.names
        ]
        errors += [CsvError(1, n, "duplicate column") for n in sorted({n for n in names if names.count(n) > 1})]
        errors += [
            CsvError(1, c.name, "required column is missing")
            for c in self.columns
            if c.required and c.name not in names
        ]
        return names, errors

    def parse(self, line: int, names: list[str], row: list[str]) -> tuple[BaseModel | None, list[CsvError]]:
        if len(row) != len(names):
            return None, [CsvError(line, None, f"expected {len(names)} cells, found {len(row)}")]
        cells = {n: v.strip() for n, v in zip(names, row, strict=True) if v.strip() != ""}
        try:
            data = self.build(cells)
        except CellError as exc:
            return None, [CsvError(line, exc.column, exc.reason)]
        try:
            return self.record.model_validate(data), []
        except ValidationError as exc:
            return None, [
                CsvError(line, self.column_of(tuple(e["loc"])), _reason(e)) for e in exc.errors(include_url=False)
            ]


def _reason(err: Any) -> str:
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "missing":
        return "required value is missing"
    return msg.removeprefix("Value error, ")


FORMATS: dict[str, CsvFormat] = {
    "customers": CsvFormat(
        "customers",
        CustomerRecord,
        (
            Column("id", True, "External id of the customer"),
            Column("name", True, "Legal or display name"),
            Column("email", False, "Billing contact email"),
            Column("phone", False, "Billing contact phone (E.164)"),
            Column("time_zone", False, "IANA time zone, default UTC"),
            Column("locale", False, "Language tag, default en"),
            Column("country", False, "ISO 3166-1 alpha-2"),
            Column("tags", False, "Tags separated by |"),
            Column("segment", False, "Customer segment"),
            *(Column(f"consent_{ch}", False, f"Consent to be contacted by {ch}: true/false") for ch in CHANNELS),
            Column("credit_hold", False, "true/false"),
        ),
        _customer,
    ),
    "invoices": CsvFormat(
        "invoices",
        InvoiceRecord,
        (
            Column("id", True, "External id of the invoice"),
            Column("customer_id", True, "External id of an existing customer"),
            Column("number", True, "Invoice number the customer sees"),
            Column("currency", True, "ISO 4217 code"),
            Column("total", True, "Decimal in the currency's minor unit, e.g. 4820.00"),
            Column("issue_date", True, "YYYY-MM-DD"),
            Column("due_date", False, "YYYY-MM-DD, not before issue_date"),
            Column("terms", False, "Payment terms, e.g. net30"),
        ),
        _invoice,
    ),
    "payments": CsvFormat(
        "payments",
        PaymentRecord,
        (
            Column("id", True, "External id of the payment"),
            Column("customer_id", True, "External id of an existing customer"),
            Column("currency", True, "ISO 4217 code"),
            Column("amount", True, "Decimal, positive"),
            Column("received_on", True, "YYYY-MM-DD"),
            Column("reference", False, "Bank or cheque reference"),
            Column("allocations", False, "invoice_id:amount pairs separated by |, e.g. INV-1:50.00|INV-2:20.00"),
        ),
        _payment,
    ),
}
