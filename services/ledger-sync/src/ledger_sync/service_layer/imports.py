"""Bulk CSV import: stream the file in batches of rows through the same Ledger the API uses.

Nothing is imported from a file with errors (unless `partial`), and every error is reported with its
line and column. Memory stays flat: one batch of rows at a time (plus the set of ids seen, to refuse an
id that appears twice in one file).

Customers and invoices: two passes. Pass 1 parses and checks every row against the ledger as it stands
(read-only) and spools the valid records; pass 2 writes them ~1000 rows per transaction, so the outbox
relay publishes while the import is still writing. Payments: one pass in ONE transaction, because each
payment's allocations depend on the balances the rows before it left (validation by doing, rolled back
on any error).
"""

from __future__ import annotations

import asyncio
import csv
import pickle
import tempfile
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dunning_events.outbox import OutboxWriter
from dunning_kit.clock import Clock
from ledger_sync.domain.csv_format import FORMATS, CsvError, CsvFormat
from ledger_sync.domain.ledger import InvoiceTerms
from ledger_sync.service_layer.freshness import record_sync
from ledger_sync.service_layer.ledger import BatchResult, Ledger

MAX_REPORTED_ERRORS = 10_000
WRITERS = 2  # pass-2 batches written concurrently (see _two_passes)
csv.field_size_limit(1 << 20)


@dataclass
class ImportReport:
    kind: str
    partial: bool
    rows: int = 0
    imported: int = 0
    unchanged: int = 0
    events: int = 0
    error_count: int = 0
    errors: list[CsvError] = field(default_factory=list)
    committed: bool = False

    def add(self, err: CsvError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(err)

    def count(self, result: BatchResult) -> None:
        for row in result.rows:
            if row is None:
                continue
            if row.changed:
                self.imported += 1
            else:
                self.unchanged += 1
        self.events += result.emitted

    def as_dict(self) -> dict[str, Any]:
        by_line: dict[int, list[dict[str, Any]]] = {}
        for e in self.errors:
            by_line.setdefault(e.line, []).append({"column": e.column, "reason": e.reason})
        body: dict[str, Any] = {
            "kind": self.kind,
            "partial": self.partial,
            "committed": self.committed,
            "rows": self.rows,
            "imported": self.imported if self.committed else 0,
            "unchanged": self.unchanged if self.committed else 0,
            "events": self.events if self.committed else 0,
            "error_count": self.error_count,
            "errors_truncated": self.error_count > len(self.errors),
        }
        if self.committed:
            body["skipped"] = [{"line": line, "errors": errs} for line, errs in sorted(by_line.items())]
        else:
            body["errors"] = [e.as_dict() for e in self.errors]
        return body


Batch = list[tuple[int, Any]]  # (line, record): InvoiceTerms for invoices, else the pydantic record


class _Rows:
    """Parses the file into batches of (line, record); row-level errors go straight to the report."""

    def __init__(self, fmt: CsvFormat, text: IO[str], report: ImportReport, batch_size: int) -> None:
        self.fmt = fmt
        self.reader = csv.reader(text, strict=True)
        self.report = report
        self.batch_size = batch_size
        self.names: list[str] = []
        self.seen: dict[str, int] = {}

    def header_ok(self) -> bool:
        try:
            header = next(self.reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            self.report.add(CsvError(1, None, f"unreadable header: {exc}"))
            return False
        if not header:
            self.report.add(CsvError(1, None, "the file is empty (a header row is required)"))
            return False
        self.names, errors = self.fmt.check_header(header)
        for err in errors:
            self.report.add(err)
        return not errors

    def batches(self) -> Iterator[Batch]:
        read, key = self.fmt.reader(self.names), self.fmt.key
        batch: Batch = []
        last_line = 1
        while True:
            try:
                row = next(self.reader, None)
            except (csv.Error, UnicodeDecodeError) as exc:
                self.report.add(CsvError(last_line + 1, None, f"unreadable: {exc}"))
                break
            if row is None:
                break
            line, last_line = last_line + 1, self.reader.line_num
            if not row or (not row[0].strip() and not any(cell.strip() for cell in row)):
                continue  # blank lines are not rows
            self.report.rows += 1
            record, errors = read(line, row)
            for err in errors:
                self.report.add(err)
            if record is None:
                continue
            record_id = key(record)
            if record_id in self.seen:
                self.report.add(CsvError(line, "id", f"{record_id!r} already appears on line {self.seen[record_id]}"))
                continue
            self.seen[record_id] = line
            batch.append((line, record))
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def _report_errors(report: ImportReport, fmt: CsvFormat, batch: Batch, errors: dict[int, Any]) -> None:
    for idx, exc in errors.items():
        report.add(CsvError(batch[idx][0], fmt.column_of((exc.field,)), exc.reason))


async def import_csv(
    sessions: async_sessionmaker[AsyncSession],
    outbox: OutboxWriter,
    clock: Clock,
    tenant_id: str,
    kind: str,
    text: IO[str],
    *,
    partial: bool = False,
    batch_size: int = 1000,
) -> ImportReport:
    fmt = FORMATS[kind]
    report = ImportReport(kind=kind, partial=partial)
    rows = _Rows(fmt, text, report, batch_size)
    if not rows.header_ok():
        return report
    started = clock.now()
    correlation = uuid.uuid4()
    if kind == "payments":
        return await _one_transaction(sessions, outbox, clock, tenant_id, rows, report, started, correlation)
    return await _two_passes(sessions, outbox, clock, tenant_id, rows, report, started, correlation)


async def _two_passes(
    sessions: async_sessionmaker[AsyncSession],
    outbox: OutboxWriter,
    clock: Clock,
    tenant_id: str,
    rows: _Rows,
    report: ImportReport,
    started: Any,
    correlation: uuid.UUID,
) -> ImportReport:
    kind, fmt = report.kind, rows.fmt
    with tempfile.TemporaryFile() as spool:
        # Pass 1: every row checked, nothing written; the valid rows are spooled for pass 2.
        async with sessions() as session:
            checker = Ledger(session, outbox, clock, tenant_id, source="csv")
            for batch in rows.batches():
                errors = await checker.check_invoices([r for _, r in batch]) if kind == "invoices" else {}
                _report_errors(report, fmt, batch, errors)
                valid = [_compact(line, record) for i, (line, record) in enumerate(batch) if i not in errors]
                if valid:
                    pickle.dump(valid, spool, protocol=pickle.HIGHEST_PROTOCOL)
        if report.error_count and not report.partial:
            return report

        # Pass 2: ~batch-size rows per transaction; each commit wakes the relay. Two batches are written at
        # once on two connections, so PostgreSQL inserts one while the other commits or is being prepared
        # (the rows of a file are disjoint: duplicate ids were refused in pass 1, so they never wait on
        # each other). Results are taken in file order, so the report is the same as one at a time.
        async def write(batch: Batch) -> BatchResult:
            async with sessions() as session, session.begin():
                ledger = Ledger(session, outbox, clock, tenant_id, source="csv", correlation_id=correlation)
                records = [r for _, r in batch]
                if kind == "invoices":
                    return await ledger.upsert_invoices(records, skip_invalid=True)
                return await ledger.upsert_customers(records, skip_invalid=True)

        def tally(batch: Batch, result: BatchResult) -> None:
            # Only a concurrent change between the passes can fail a row here; it is skipped and reported.
            _report_errors(report, fmt, batch, result.errors)
            report.count(result)

        spool.seek(0)
        in_flight: deque[tuple[Batch, asyncio.Task[BatchResult]]] = deque()
        try:
            async for batch in _spooled(spool):
                if len(in_flight) >= WRITERS:
                    done, task = in_flight.popleft()
                    tally(done, await task)
                in_flight.append((batch, asyncio.create_task(write(batch))))
            while in_flight:
                done, task = in_flight.popleft()
                tally(done, await task)
        finally:
            for _, task in in_flight:  # a failed batch: the other one in flight is not left running
                task.cancel()
            await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)
        async with sessions() as session, session.begin():
            await record_sync(
                session, outbox, clock, tenant_id, "csv", started_at=started, succeeded=True,
                records_changed=report.imported,
            )  # fmt: skip
        report.committed = True
    return report


async def _spooled(spool: IO[bytes]) -> AsyncIterator[Batch]:
    while True:
        try:
            items = pickle.load(spool)  # our own spool file, written in pass 1
        except EOFError:
            return
        yield [_expand(item) for item in items]


def _compact(line: int, record: Any) -> Any:
    """Checked invoices travel through the spool as plain tuples (pickling models costs ~40 us each)."""
    if isinstance(record, InvoiceTerms):
        due = record.due_date
        return (line, *record[:5], record.issue_date.toordinal(), due.toordinal() if due else None, record.terms)
    return (line, record)


def _expand(item: Any) -> tuple[int, Any]:
    if len(item) == 2:
        return item
    line, id_, customer, number, currency, total, issued, due, terms = item
    return line, InvoiceTerms(
        id_, customer, number, currency, total, date.fromordinal(issued),
        date.fromordinal(due) if due is not None else None, terms,
    )  # fmt: skip


async def _one_transaction(
    sessions: async_sessionmaker[AsyncSession],
    outbox: OutboxWriter,
    clock: Clock,
    tenant_id: str,
    rows: _Rows,
    report: ImportReport,
    started: Any,
    correlation: uuid.UUID,
) -> ImportReport:
    async with sessions() as session:
        tx = await session.begin()
        try:
            ledger = Ledger(session, outbox, clock, tenant_id, source="csv", correlation_id=correlation)
            for batch in rows.batches():
                result = await ledger.record_payments([r for _, r in batch], skip_invalid=True)
                _report_errors(report, rows.fmt, batch, result.errors)
                report.count(result)
            if report.error_count and not report.partial:
                await tx.rollback()
                return report
            await record_sync(
                session, outbox, clock, tenant_id, "csv", started_at=started, succeeded=True,
                records_changed=report.imported,
            )  # fmt: skip
            await tx.commit()
            report.committed = True
        except BaseException:
            if tx.is_active:
                await tx.rollback()
            raise
    return report
