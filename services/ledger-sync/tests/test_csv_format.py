"""The fast invoice row reader must agree with InvoiceRecord: whatever it accepts, the record accepts with
the same values; whatever it is not sure of goes to the record, so errors are judged in one place."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_sync.domain.csv_format import FORMATS, fast_invoice_reader

FMT = FORMATS["invoices"]
NAMES = ["id", "customer_id", "number", "currency", "total", "issue_date", "due_date", "terms"]

_text = st.sampled_from(["INV-1", " C-1 ", "N 1", "", "  ", "x" * 100, "x" * 101, "x" * 200, "x" * 201, "é", "\t"])
_currency = st.sampled_from(["EUR", "eur", " usd", "JPY", "KWD", "XXX", "EU", "", "ЕUR"])
_total = st.sampled_from(
    ["0", "0.00", "4820.00", "4820.5", "4820.505", "4820.500", "1e3", "-1.00", "+1.00", "1,00", ".5", "5.",
     "00012.30", "１２", "NaN", "Infinity", " 7.25 ", "1.0000", "123456789012345", "1234567890123456", ""]
)  # fmt: skip
_date = st.sampled_from(
    ["2026-03-01", "2026-03-31", "2026-02-28", "2026-02-30", "2026-3-1", "20260301", "2026-03-01T00:00:00",
     "2026-W09-1", "0000-01-01", "2026/03/01", "", " 2026-03-02 ", "２０２６-03-01"]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(
    invoice_id=_text,
    customer_id=_text,
    number=_text,
    currency=_currency,
    total=_total,
    issued=_date,
    due=_date,
    terms=_text,
)
def test_the_fast_reader_only_accepts_what_the_record_accepts_with_the_same_values(
    invoice_id: str, customer_id: str, number: str, currency: str, total: str, issued: str, due: str, terms: str
) -> None:
    row = [invoice_id, customer_id, number, currency, total, issued, due, terms]
    fast = fast_invoice_reader(NAMES)(row)
    record, errors = FMT.parse(2, NAMES, row)
    if fast is not None:
        assert record is not None, errors
        assert fast == record.ledger_terms()  # type: ignore[attr-defined]
    # The reader the import uses gives the record's verdict either way.
    read, read_errors = FMT.reader(NAMES)(2, row)
    assert read_errors == errors
    assert read == (None if record is None else record.ledger_terms())  # type: ignore[attr-defined]


def test_odd_but_valid_cells_still_import_through_the_record() -> None:
    read = FMT.reader(NAMES)
    terms, errors = read(2, ["INV-1", "C-1", "N1", "eur", "4820.500", "2026-03-01", "", ""])
    assert errors == [] and terms is not None and terms.total == 482050 and terms.currency == "EUR"
    terms, errors = read(2, ["INV-1", "C-1", "N1", "EUR", "1e3", "2026-03-01", "", ""])
    assert errors == [] and terms is not None and terms.total == 100000


def test_a_bad_row_reports_the_records_errors_with_line_and_column() -> None:
    _, errors = FMT.reader(NAMES)(7, ["INV-1", "C-1", "N1", "EUR", "10.001", "2026-03-02", "2026-03-01", ""])
    assert {(e.line, e.column, e.reason) for e in errors} == {
        (7, "total", "has more decimals than EUR allows (2)"),
        (7, "due_date", "must not be before issue_date"),
    }
