"""The documented CSV column formats for bulk import, and row -> canonical record conversion.

One header row (names case-insensitive, any order, unknown names refused); empty cells mean "not given".
Every problem is reported as (line, column, reason); line 1 is the header.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from operator import attrgetter
from typing import Any

from pydantic import BaseModel, ValidationError

from dunning_events.money import ISO_CURRENCIES, minor_units
from ledger_sync.domain.ledger import InvoiceTerms
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

RowReader = Callable[[int, list[str]], tuple[Any | None, list[CsvError]]]

# The fast invoice row: only what InvoiceRecord certainly accepts, read to the same values. Anything
# else (a bad cell, but also a valid exotic one such as "1e3" or "4820.500") goes through the
# pydantic record, so errors and odd-but-valid input are judged in exactly one place.
_AMOUNT = re.compile(r"([0-9]{1,14})(?:\.([0-9]{1,4}))?")  # below MAX_AMOUNT, as AmountStr checks
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_EXPONENT = {code: minor_units(code) for code in ISO_CURRENCIES}


def _fast_date(cell: str) -> date | None:
    m = _DATE.fullmatch(cell)
    if m is None:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def fast_invoice_reader(names: list[str]) -> Callable[[list[str]], InvoiceTerms | None]:
    """A reader of clean invoice rows straight to InvoiceTerms (no per-row pydantic model: a 100,000-row
    import spent a third of its CPU there); None means "not certainly valid, ask InvoiceRecord"."""
    at = {n: i for i, n in enumerate(names)}
    width = len(names)
    i_id, i_customer, i_number, i_currency, i_total, i_issued = (
        at["id"], at["customer_id"], at["number"], at["currency"], at["total"], at["issue_date"]
    )  # fmt: skip
    i_due, i_terms = at.get("due_date"), at.get("terms")

    def read(row: list[str]) -> InvoiceTerms | None:
        if len(row) != width:
            return None
        invoice_id, customer_id, number = row[i_id].strip(), row[i_customer].strip(), row[i_number].strip()
        if not (0 < len(invoice_id) <= 200 and 0 < len(customer_id) <= 200 and 0 < len(number) <= 100):
            return None
        currency = row[i_currency].strip().upper()
        exponent = _EXPONENT.get(currency)
        amount = _AMOUNT.fullmatch(row[i_total].strip())
        if exponent is None or amount is None:
            return None
        whole, fraction = amount.groups()
        if fraction is None:
            total = int(whole) * 10**exponent
        elif len(fraction) <= exponent:
            total = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0"))
        else:
            return None
        issued = _fast_date(row[i_issued].strip())
        if issued is None:
            return None
        due = None
        if i_due is not None and (cell := row[i_due].strip()):
            due = _fast_date(cell)
            if due is None or due < issued:
                return None
        terms = None
        if i_terms is not None and (terms := row[i_terms].strip() or None) is not None and len(terms) > 100:
            return None
        return InvoiceTerms(invoice_id, customer_id, number, currency, total, issued, due, terms)

    return read


def _invoice_terms(record: BaseModel) -> InvoiceTerms:
    assert isinstance(record, InvoiceRecord)
    return record.ledger_terms()


@dataclass(frozen=True)
class CsvFormat:
    kind: str
    record: type[BaseModel]
    columns: tuple[Column, ...]
    build: Callable[[dict[str, str]], dict[str, Any]]
    # Optional: a cheap reader of the clean rows (None = "ask the record") and what the import hands
    # the ledger instead of the record (invoices: InvoiceTerms, in minor units).
    fast: Callable[[list[str]], Callable[[list[str]], Any | None]] | None = None
    finish: Callable[[BaseModel], Any] | None = None
    key: Callable[[Any], str] = attrgetter("id")

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

    def reader(self, names: list[str]) -> RowReader:
        """Row -> (record, errors) for a file with this header: the fast reader where the format has one."""
        if self.fast is None:
            return lambda line, row: self.parse(line, names, row)
        fast, finish = self.fast(names), self.finish

        def read(line: int, row: list[str]) -> tuple[Any | None, list[CsvError]]:
            if _NUL in "".join(row):
                return None, _nul_errors(line, names, row)
            record = fast(row)
            if record is not None:
                return record, []
            checked, errors = self.parse(line, names, row)
            return (checked if checked is None or finish is None else finish(checked)), errors

        return read

    def parse(self, line: int, names: list[str], row: list[str]) -> tuple[BaseModel | None, list[CsvError]]:
        if len(row) != len(names):
            return None, [CsvError(line, None, f"expected {len(names)} cells, found {len(row)}")]
        if _NUL in "".join(row):
            return None, _nul_errors(line, names, row)
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


_NUL = "\x00"


def _nul_errors(line: int, names: list[str], row: list[str]) -> list[CsvError]:
    """PostgreSQL cannot store U+0000 (the HTTP edge guard refuses it in JSON; a CSV cell is refused here)."""
    return [
        CsvError(line, names[i] if i < len(names) else None, "contains a NUL byte (U+0000), which cannot be stored")
        for i, cell in enumerate(row)
        if _NUL in cell
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
        fast=fast_invoice_reader,
        finish=_invoice_terms,
        key=attrgetter("invoice_id"),
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
