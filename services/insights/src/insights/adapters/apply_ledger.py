"""The ledger facts of a batch (events or an export page) applied set-wise: invoices, their changes, ar_daily and
sales_daily in one transaction, a fixed number of statements whatever the batch's size.

How ar_daily and sales_daily stay equal to the GROUP BY over their sources (the invariant a test pins): the
invoices the batch touches are locked and read with their changes (one statement each), everything the batch
does to them (new changes, the restated `issue` and `prior`, voids, due-date and total moves, open/closed
recomputed) is worked out in Python from those rows, only the rows that differ are written, and the difference
between their contributions after and before is added to the daily tables. Whatever the batch does to an invoice
(a restatement, a due date moved, a currency corrected) is then reflected, at the cost of reading the few changes
of the invoices it touched; an invoice new to the model costs its inserts and nothing else.

`open_delta` and `settled_on` are worked out from the invoice's changes in business-date order (not arrival
order, domain/facts.open_deltas and settled_on): so the model built from the stream and the one built by a
backfill (which sees no arrival order) agree.

Stream batches and export pages (`from_export`, a backfill) never run at the same time: a batch takes the
`ledger_gate` table's lock in ROW EXCLUSIVE mode, a page in SHARE mode, first thing. Pages do run beside pages:
those of one backfill hold different invoices, and two backfills of one tenant never run at once
(service_layer/backfill.py). So what a page's reads did not find is known to be new to the model, and is written by
COPY instead of an upsert (a backfill is mostly invoices the model has never seen). The rows pages share,
ar_daily and sales_daily, are written last, after the page's `turn` (the page before it has committed), so pages
commit in order and never wait for each other in a cycle. The customers' currency and terms (those of their latest
invoice) are set once, when the last page of the invoices is applied (`set_customer_terms`), not per page: every
page touches most customers again. Measured on the bench's 100,000-invoice backfill: 6.5 s before these, 3.4 s
with COPY and the terms once; 23,508 invoices/s in `make bench` with two pages at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.bulk import raw_connection
from dunning_events.events import supersedes
from insights.adapters.rows import by_tenant, columns_of, in_batch, unnest
from insights.domain.facts import Change, Facts, open_deltas, settled_on

INVOICE_COLUMNS = [
    ("tenant_id", "varchar"), ("invoice_id", "varchar"), ("customer_id", "varchar"), ("number", "varchar"),
    ("currency", "varchar"), ("total", "numeric"), ("balance", "numeric"), ("issue_date", "date"),
    ("due_date", "date"), ("terms", "varchar"), ("status", "varchar"), ("disputed", "boolean"), ("ledger_version", "bigint"),
]  # fmt: skip
PATCH_COLUMNS = [
    ("tenant_id", "varchar"), ("invoice_id", "varchar"), ("balance", "numeric"), ("status", "varchar"),
    ("balance_version", "bigint"), ("disputed", "boolean"), ("disputed_version", "bigint"),
]  # fmt: skip
CHANGE_COLUMNS = [
    ("tenant_id", "varchar"), ("invoice_id", "varchar"), ("change_key", "varchar"), ("kind", "varchar"),
    ("on_date", "date"), ("amount", "numeric"),
]  # fmt: skip
CLOSE_COLUMNS = [
    ("tenant_id", "varchar"), ("invoice_id", "varchar"), ("kind", "varchar"), ("on_date", "date"), ("amount", "numeric"),
]  # fmt: skip


# A page and an event never both add the same brand-new invoice's changes to ar_daily: see the module's docstring.
GATE_FOR_BATCH = text("LOCK TABLE ledger_gate IN ROW EXCLUSIVE MODE")
GATE_FOR_PAGE = text("LOCK TABLE ledger_gate IN SHARE MODE")
Turn = Callable[[], Awaitable[None]]
InvoiceKey = tuple[str, str]  # (tenant_id, invoice_id)
CLOSE_KINDS = ("void", "write_off")
# What the stream may have recorded about an invoice before an export page brings it (see _count_late_changes).
LATE_KINDS = frozenset({"payment", "credit", "reversal"})


class HeldChange(NamedTuple):
    """An invoice_changes row without its key (the applier's working copy)."""

    kind: str
    on_date: date
    amount: Decimal
    open_delta: int


class InvoiceState(NamedTuple):
    """An invoice row as the applier reads it (INVOICE_STATE); built in Python for one an export page inserts."""

    invoice_id: str
    currency: str
    due_date: date
    issue_date: date
    total: Decimal
    balance: Decimal
    status: str
    settled_on: date | None
    closed_on: date | None
    last_step_id: str | None


# The invoices the batch touches as they are (locked, before the batch) and as the batch left them, and their
# changes: everything the applier works out is computed from these rows.
INVOICE_STATE = (
    "i.invoice_id, i.currency, i.due_date, i.issue_date, i.total, i.balance, i.status, i.settled_on, i.closed_on, "
    "i.last_step_id"
)
LOCK = text(f"SELECT {INVOICE_STATE} FROM invoices i WHERE {in_batch('i')} ORDER BY i.invoice_id FOR UPDATE")
READ_INVOICES = text(f"SELECT {INVOICE_STATE} FROM invoices i WHERE {in_batch('i')}")
READ_CHANGES = text(
    "SELECT c.invoice_id, c.change_key, c.kind, c.on_date, c.amount, c.open_delta FROM invoice_changes c "
    f"WHERE {in_batch('c')}"
)
HISTORY_COLUMNS = [*CHANGE_COLUMNS, ("open_delta", "smallint")]
UPSERT_HISTORY = text(
    f"INSERT INTO invoice_changes ({', '.join(n for n, _ in HISTORY_COLUMNS)}) SELECT * FROM {unnest(HISTORY_COLUMNS)} "
    "ON CONFLICT (tenant_id, invoice_id, change_key) DO UPDATE SET kind = excluded.kind, on_date = excluded.on_date, "
    "amount = excluded.amount, open_delta = excluded.open_delta"
)
DELETE_CHANGES = text(
    "DELETE FROM invoice_changes c USING unnest(CAST(:t AS varchar[]), CAST(:i AS varchar[]), CAST(:k AS varchar[])) "
    "AS g(tenant_id, invoice_id, change_key) WHERE c.tenant_id = g.tenant_id AND c.invoice_id = g.invoice_id "
    "AND c.change_key = g.change_key"
)
SETTLED_COLUMNS = [("tenant_id", "varchar"), ("invoice_id", "varchar"), ("settled_on", "date"), ("closed_on", "date")]
SET_SETTLED_AND_CLOSED = text(
    f"UPDATE invoices i SET settled_on = r.settled_on, closed_on = r.closed_on FROM {unnest(SETTLED_COLUMNS)} "
    "WHERE i.tenant_id = r.tenant_id AND i.invoice_id = r.invoice_id"
)
# What the batch changed in both daily tables, in one round trip (rows in key order); the rows it leaves at zero
# are dropped after.
ADD_CONTRIBUTIONS = text(
    "WITH ar AS (INSERT INTO ar_daily (tenant_id, currency, due_date, on_date, amount, open_count) "
    "SELECT * FROM unnest(CAST(:at AS varchar[]), CAST(:ac AS varchar[]), CAST(:ad AS date[]), CAST(:ao AS date[]), "
    "CAST(:aa AS numeric[]), CAST(:an AS integer[])) "
    "ON CONFLICT (tenant_id, currency, due_date, on_date) DO UPDATE "
    "SET amount = ar_daily.amount + excluded.amount, open_count = ar_daily.open_count + excluded.open_count "
    "RETURNING 'ar' AS kind, tenant_id, currency, due_date, on_date, amount, open_count AS n), "
    "sales AS (INSERT INTO sales_daily (tenant_id, currency, issue_date, amount, invoice_count) "
    "SELECT * FROM unnest(CAST(:st AS varchar[]), CAST(:sc AS varchar[]), CAST(:sd AS date[]), "
    "CAST(:sa AS numeric[]), CAST(:sn AS integer[])) "
    "ON CONFLICT (tenant_id, currency, issue_date) DO UPDATE "
    "SET amount = sales_daily.amount + excluded.amount, "
    "invoice_count = sales_daily.invoice_count + excluded.invoice_count "
    "RETURNING 'sales' AS kind, tenant_id, currency, issue_date, CAST(NULL AS date), amount, invoice_count) "
    "SELECT * FROM ar UNION ALL SELECT * FROM sales"
)
AR_DROP_ZEROS = text(
    "DELETE FROM ar_daily a USING unnest(CAST(:t AS varchar[]), CAST(:c AS varchar[]), CAST(:d AS date[]), "
    "CAST(:o AS date[])) AS z(tenant_id, currency, due_date, on_date) "
    "WHERE a.tenant_id = z.tenant_id AND a.currency = z.currency AND a.due_date = z.due_date "
    "AND a.on_date = z.on_date AND a.amount = 0 AND a.open_count = 0"
)
SALES_DROP_ZEROS = text(
    "DELETE FROM sales_daily s USING unnest(CAST(:t AS varchar[]), CAST(:c AS varchar[]), CAST(:d AS date[])) "
    "AS z(tenant_id, currency, issue_date) WHERE s.tenant_id = z.tenant_id AND s.currency = z.currency "
    "AND s.issue_date = z.issue_date AND s.amount = 0 AND s.invoice_count = 0"
)

_SNAPSHOT_SET = ", ".join(
    f"{name} = excluded.{name}" for name, _ in INVOICE_COLUMNS if name not in ("tenant_id", "invoice_id")
)
UPSERT_INVOICES = text(
    f"INSERT INTO invoices ({', '.join(n for n, _ in INVOICE_COLUMNS)}) SELECT * FROM {unnest(INVOICE_COLUMNS)} "
    f"ON CONFLICT (tenant_id, invoice_id) DO UPDATE SET {_SNAPSHOT_SET} "
    # supersedes(): an older snapshot (a redelivery, a replayed dead letter, a stale export page) changes nothing
    "WHERE excluded.ledger_version = 0 OR invoices.ledger_version < excluded.ledger_version"
)
PATCH_INVOICES = text(
    "UPDATE invoices i SET "
    "balance = CASE WHEN r.balance_version IS NOT NULL AND (r.balance_version = 0 "
    "  OR r.balance_version > i.ledger_version) THEN r.balance ELSE i.balance END, "
    "status = CASE WHEN r.balance_version IS NOT NULL AND (r.balance_version = 0 "
    "  OR r.balance_version > i.ledger_version) THEN r.status ELSE i.status END, "
    "disputed = CASE WHEN r.disputed_version IS NOT NULL AND (r.disputed_version = 0 "
    "  OR r.disputed_version > i.ledger_version) THEN r.disputed ELSE i.disputed END, "
    "ledger_version = greatest(i.ledger_version, coalesce(r.balance_version, 0), coalesce(r.disputed_version, 0)) "
    f"FROM {unnest(PATCH_COLUMNS)} WHERE i.tenant_id = r.tenant_id AND i.invoice_id = r.invoice_id"
)
# An invoice that arrives after a step about it (the steps topic ran ahead) still shows its latest step: its
# step_invoices rows, then those steps by their primary key (looked up apart: joined, a tenant the statistics do
# not know yet was planned as a scan of its steps per row), the latest chosen in Python.
STEPS_OF_INVOICES = text(f"SELECT si.invoice_id, si.step_id FROM step_invoices si WHERE {in_batch('si')}")
STEPS_BY_ID = text(
    "SELECT st.step_id, st.step_name, st.due_at, st.next_step_name, st.next_step_at FROM steps st "
    "WHERE st.tenant_id = (SELECT CAST(:tenant AS varchar)) AND st.step_id = ANY(CAST(:steps AS varchar[]))"
)
LATEST_STEP_COLUMNS = [
    ("tenant_id", "varchar"), ("invoice_id", "varchar"), ("step_id", "varchar"), ("step_name", "varchar"),
    ("due_at", "timestamptz"), ("next_step_name", "varchar"), ("next_step_at", "timestamptz"),
]  # fmt: skip
LATEST_STEP = text(
    "UPDATE invoices i SET last_step_id = r.step_id, last_step_name = r.step_name, last_step_at = r.due_at, "
    f"next_step_name = r.next_step_name, next_step_at = r.next_step_at FROM {unnest(LATEST_STEP_COLUMNS)} "
    "WHERE i.tenant_id = r.tenant_id AND i.invoice_id = r.invoice_id AND i.last_step_id IS NULL"
)
CUSTOMER_TERMS = text(
    "INSERT INTO customers (tenant_id, customer_id, currency, terms) "
    "SELECT DISTINCT ON (i.tenant_id, i.customer_id) i.tenant_id, i.customer_id, i.currency, i.terms "
    "FROM (SELECT DISTINCT * FROM unnest(CAST(:tenants AS varchar[]), CAST(:customers AS varchar[]))"
    " AS k(tenant_id, customer_id)) k JOIN invoices i USING (tenant_id, customer_id) "
    "ORDER BY i.tenant_id, i.customer_id, i.issue_date DESC, i.invoice_id DESC "
    "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET currency = excluded.currency, terms = excluded.terms "
    "WHERE (customers.currency, customers.terms) IS DISTINCT FROM (excluded.currency, excluded.terms)"
)
CUSTOMER_TERMS_OF_TENANT = text(
    "INSERT INTO customers (tenant_id, customer_id, currency, terms) "
    "SELECT DISTINCT ON (i.customer_id) i.tenant_id, i.customer_id, i.currency, i.terms FROM invoices i "
    "WHERE i.tenant_id = :tenant ORDER BY i.customer_id, i.issue_date DESC, i.invoice_id DESC "
    "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET currency = excluded.currency, terms = excluded.terms "
    "WHERE (customers.currency, customers.terms) IS DISTINCT FROM (excluded.currency, excluded.terms)"
)
CUSTOMER_COLUMNS = [("tenant_id", "varchar"), ("customer_id", "varchar"), ("name", "varchar"), ("segment", "varchar")]
UPSERT_CUSTOMERS = text(
    "INSERT INTO customers (tenant_id, customer_id, name, segment) "
    f"SELECT * FROM {unnest(CUSTOMER_COLUMNS)} ON CONFLICT (tenant_id, customer_id) DO UPDATE "
    "SET name = excluded.name, segment = excluded.segment WHERE NOT customers.erased"  # the pseudonym stays
)
ERASURE_COLUMNS = [("tenant_id", "varchar"), ("customer_id", "varchar"), ("name", "varchar")]
ERASE_CUSTOMERS = text(
    "INSERT INTO customers (tenant_id, customer_id, name, erased) "
    f"SELECT r.tenant_id, r.customer_id, r.name, true FROM {unnest(ERASURE_COLUMNS)} "
    "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET name = excluded.name, erased = true"
)
DISPUTE_COLUMNS = [("tenant_id", "varchar"), ("invoice_id", "varchar"), ("opened_at", "timestamptz")]
OPEN_DISPUTES = text(
    f"INSERT INTO disputes (tenant_id, invoice_id, opened_at) SELECT * FROM {unnest(DISPUTE_COLUMNS)} "
    "ON CONFLICT DO NOTHING"
)
RESOLVED_COLUMNS = [*DISPUTE_COLUMNS, ("resolved_at", "timestamptz")]
# From the stream: the open period of that invoice that began before it ended. From the export: that period.
RESOLVE_DISPUTES = text(
    f"UPDATE disputes d SET resolved_at = r.resolved_at FROM {unnest(RESOLVED_COLUMNS)} "
    "WHERE d.tenant_id = r.tenant_id AND d.invoice_id = r.invoice_id AND d.opened_at <= r.resolved_at "
    "AND (d.opened_at = r.opened_at OR (r.opened_at IS NULL AND d.resolved_at IS NULL))"
)


def newest_per_invoice(rows: Iterable[dict[str, Any]], version: str = "ledger_version") -> dict[Any, dict[str, Any]]:
    """The newest fact per invoice (`supersedes`; unversioned ones in arrival order)."""
    best: dict[Any, dict[str, Any]] = {}
    for row in rows:
        key = (row["tenant_id"], row["invoice_id"])
        held = best.get(key)
        if held is None or supersedes(row[version], held[version]):
            best[key] = row
    return best


def invoice_patches(facts: Facts, snapshots: dict[Any, dict[str, Any]]) -> list[dict[str, Any]]:
    """Balances (allocations) and dispute flags newer than the batch's own snapshot of the invoice: each field is
    taken from the newest fact that sets it, so a dispute flag does not hide a later payment's balance."""
    patches: dict[Any, dict[str, Any]] = {}
    for key, row in newest_per_invoice(facts.balances).items():
        snap = snapshots.get(key)
        if snap is None or supersedes(row["ledger_version"], snap["ledger_version"]):
            patches[key] = {
                "tenant_id": row["tenant_id"], "invoice_id": row["invoice_id"], "balance": row["balance"],
                "status": row["status"], "balance_version": row["ledger_version"],
            }  # fmt: skip
    for key, row in newest_per_invoice(facts.disputed).items():
        snap = snapshots.get(key)
        if snap is None or supersedes(row["ledger_version"], snap["ledger_version"]):
            patch = patches.setdefault(key, {"tenant_id": row["tenant_id"], "invoice_id": row["invoice_id"]})
            patch.update(disputed=row["disputed"], disputed_version=row["ledger_version"])
    return list(patches.values())


def _unique(rows: Iterable[dict[str, Any]], *key: str, last: bool = True) -> list[dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        k = tuple(row[n] for n in key)
        if last or k not in out:
            out[k] = row
    return list(out.values())


async def _drop_zeros(session: AsyncSession, zeros: set[tuple[Any, ...]]) -> None:
    ar = [z for z in zeros if z[0] == "ar"]
    if ar:
        await session.execute(
            AR_DROP_ZEROS,
            {"t": [z[1] for z in ar], "c": [z[2] for z in ar], "d": [z[3] for z in ar], "o": [z[4] for z in ar]},
        )
    sales = [z for z in zeros if z[0] == "sales"]
    if sales:
        await session.execute(
            SALES_DROP_ZEROS, {"t": [z[1] for z in sales], "c": [z[2] for z in sales], "d": [z[3] for z in sales]}
        )


async def apply_ledger(
    session: AsyncSession, facts: Facts, *, from_export: bool = False, turn: Turn | None = None
) -> None:
    """Apply the batch's ledger facts. `from_export`: the rows are a page of ledger-sync's export (the book of
    record now), so a change already held is restated to what the export says instead of kept. `turn` is awaited
    once, before the writes to rows other pages also write (a page waits there for the page before it)."""
    touched = facts.touched_invoices()
    if from_export:
        await session.execute(GATE_FOR_PAGE)
    elif touched:
        # The gate first, before any row lock (see the module's docstring).
        await session.execute(GATE_FOR_BATCH)
    if facts.customers:
        rows = _unique(facts.customers, "tenant_id", "customer_id")
        await session.execute(UPSERT_CUSTOMERS, columns_of(rows, CUSTOMER_COLUMNS))
    if facts.erasures:
        rows = _unique(facts.erasures, "tenant_id", "customer_id")
        await session.execute(ERASE_CUSTOMERS, columns_of(rows, ERASURE_COLUMNS))
    if touched:
        scopes = [{"tenant": tenant, "ids": ids} for tenant, ids in by_tenant(touched).items()]
        await _apply_invoices(session, facts, scopes, from_export=from_export, turn=turn)
    else:
        if turn is not None:
            await turn()
        if facts.disputed:
            await session.execute(PATCH_INVOICES, columns_of(invoice_patches(facts, {}), PATCH_COLUMNS))
    if facts.disputes_opened:
        rows = _unique(facts.disputes_opened, "tenant_id", "invoice_id", "opened_at")
        await session.execute(OPEN_DISPUTES, columns_of(rows, DISPUTE_COLUMNS))
    if facts.disputes_resolved:
        await session.execute(RESOLVE_DISPUTES, columns_of(facts.disputes_resolved, RESOLVED_COLUMNS))


async def _apply_invoices(
    session: AsyncSession, facts: Facts, scopes: list[dict[str, Any]], *, from_export: bool, turn: Turn | None
) -> None:
    """Read the touched invoices (locked) and their changes once, work out in Python what the batch makes of them
    (domain/facts: the restated `issue` and `prior`, the closes, open_delta, settled_on), then write only what
    differs and add the difference of their contributions to ar_daily and sales_daily: a fixed number of
    statements per batch, none of them a per-invoice subquery."""
    before: dict[InvoiceKey, Any] = {}
    held: dict[InvoiceKey, dict[str, HeldChange]] = {}
    for scope in scopes:
        tenant = scope["tenant"]
        for row in (await session.execute(LOCK, scope)).all():
            before[(tenant, row.invoice_id)] = row
        for row in (await session.execute(READ_CHANGES, scope)).all():
            held.setdefault((tenant, row.invoice_id), {})[row.change_key] = HeldChange(
                row.kind, row.on_date, row.amount, row.open_delta
            )
    snapshots = newest_per_invoice(facts.invoices)
    # From an export page, an invoice the model does not hold is new (the page's table lock): it is inserted by
    # COPY and its row after the batch is known without reading it back.
    fresh = {key: snap for key, snap in snapshots.items() if key not in before} if from_export else {}
    if fresh:
        _count_late_changes(facts, fresh, held)
        await _copy_rows(session, "invoices", INVOICE_COLUMNS, fresh.values())
    known = [snap for key, snap in snapshots.items() if key not in fresh]
    if known:
        await session.execute(UPSERT_INVOICES, columns_of(known, INVOICE_COLUMNS))
    patches = invoice_patches(facts, snapshots)
    if patches:
        await session.execute(PATCH_INVOICES, columns_of(patches, PATCH_COLUMNS))
    after = dict(before)
    if known or patches:
        after = {}
        for scope in scopes:
            tenant = scope["tenant"]
            for row in (await session.execute(READ_INVOICES, scope)).all():
                after[(tenant, row.invoice_id)] = row
    else:
        after.update((key, _inserted_state(snap)) for key, snap in fresh.items())
    history = _histories(facts, held, after, set(snapshots), from_export=from_export)
    await _write_changes(session, held, history, copy_new=from_export)
    await _write_settled_and_closed(session, after, history)
    await _latest_steps(session, [key for key in snapshots if key in after and after[key].last_step_id is None])
    if turn is not None:
        await turn()
    await _write_contributions(session, before, held, after, history)
    owners = sorted({(r["tenant_id"], r["customer_id"]) for r in snapshots.values()})
    if owners and not from_export:  # an export's: set_customer_terms, after its last page
        await session.execute(CUSTOMER_TERMS, {"tenants": [t for t, _ in owners], "customers": [c for _, c in owners]})


async def set_customer_terms(session: AsyncSession, tenant_id: str) -> None:
    """Every customer's currency and terms: those of its latest invoice (a backfill's, after its last page)."""
    await session.execute(CUSTOMER_TERMS_OF_TENANT, {"tenant": tenant_id})


def _count_late_changes(
    facts: Facts, fresh: dict[InvoiceKey, dict[str, Any]], held: dict[InvoiceKey, dict[str, HeldChange]]
) -> None:
    """An invoice an export page brings for the first time while the stream already recorded a payment, credit or
    reversal of it (a rebuild, or a first backfill, running): the page was read before that change, so its balance
    does not count it yet. It is made to, so the invoice's changes still add up to its balance."""
    listed = {(c["tenant_id"], c["invoice_id"], c["change_key"]) for c in facts.changes}
    for key, snap in fresh.items():
        late = sum(
            (c.amount for k, c in held.get(key, {}).items() if c.kind in LATE_KINDS and (*key, k) not in listed),
            Decimal(0),
        )
        if late:
            snap["balance"] = balance = snap["balance"] + late
            if snap["status"] in ("open", "paid"):  # as ledger-sync judges it after a payment
                snap["status"] = "paid" if balance == 0 else "open"


def _inserted_state(snap: dict[str, Any]) -> InvoiceState:
    """The row a fresh invoice's snapshot inserted, as READ_INVOICES would read it back."""
    return InvoiceState(
        snap["invoice_id"], snap["currency"], snap["due_date"], snap["issue_date"], snap["total"], snap["balance"],
        snap["status"], None, None, None,
    )  # fmt: skip


async def _copy_rows(
    session: AsyncSession, table: str, columns: list[tuple[str, str]], rows: Iterable[dict[str, Any]]
) -> None:
    """Rows known to be new, by COPY (binary, in the session's transaction): no conflict to check."""
    names = [name for name, _ in columns]
    records = [tuple(row.get(name) for name in names) for row in rows]
    if records:
        apg = await raw_connection(session)
        await apg.copy_records_to_table(table, records=records, columns=names)


def _histories(
    facts: Facts,
    held: dict[InvoiceKey, dict[str, HeldChange]],
    after: dict[InvoiceKey, Any],
    snapshotted: set[InvoiceKey],
    *,
    from_export: bool,
) -> dict[InvoiceKey, dict[str, HeldChange]]:
    """Every touched invoice's changes once the batch is applied, with open_delta recounted, in the order the
    statements this replaces ran: the issue restated (a snapshot's invoices), the new changes (from the stream a
    change already held is kept, from the export it is restated), the closes (their amount, unless the export
    says it, is what the changes add up to just before), the prior restated, then open_delta."""
    history = {key: dict(changes) for key, changes in held.items()}
    for key in snapshotted:
        inv = after.get(key)
        if inv is not None:
            history.setdefault(key, {})["issue"] = HeldChange("issue", inv.issue_date, inv.total, 0)
    for row in _unique(facts.changes, "tenant_id", "invoice_id", "change_key", last=from_export):
        changes = history.setdefault((row["tenant_id"], row["invoice_id"]), {})
        held_change = changes.get(row["change_key"])
        if held_change is None or from_export:
            changes[row["change_key"]] = HeldChange(row["kind"], row["on_date"], row["amount"], 0)
    closes: list[tuple[InvoiceKey, str, HeldChange]] = []
    for row in _unique(facts.closes, "tenant_id", "invoice_id", "kind", last=from_export):
        key = (row["tenant_id"], row["invoice_id"])
        if key not in after:  # a close of an invoice the model does not have yet waits for its snapshot
            continue
        changes = history.get(key, {})
        amount = row["amount"]
        if amount is None:
            amount = sum((c.amount for c in changes.values() if c.kind not in CLOSE_KINDS), Decimal(0))
        closes.append((key, row["kind"], HeldChange(row["kind"], row["on_date"], -amount, 0)))
    for key, change_key, change in closes:  # one statement's snapshot: a close does not see another close
        changes = history.setdefault(key, {})
        if change_key not in changes or from_export:
            changes[change_key] = change
    for key, inv in after.items():
        changes = history.setdefault(key, {})
        prior = inv.balance - sum((c.amount for k, c in changes.items() if c.kind != "prior"), Decimal(0))
        if prior:
            changes["prior"] = HeldChange("prior", inv.issue_date, prior, 0)
        else:
            changes.pop("prior", None)
    for changes in history.values():
        if len(changes) == 1:  # most invoices of a backfill: their issue alone (open_deltas of one change)
            ((k, c),) = changes.items()
            if c.open_delta != (c.amount != 0):
                changes[k] = c._replace(open_delta=int(c.amount != 0))
            continue
        deltas = open_deltas(Change(k, c.kind, c.on_date, c.amount) for k, c in changes.items())
        for k, c in changes.items():
            if c.open_delta != deltas[k]:
                changes[k] = c._replace(open_delta=deltas[k])
    return history


async def _write_changes(
    session: AsyncSession,
    held: dict[InvoiceKey, dict[str, HeldChange]],
    history: dict[InvoiceKey, dict[str, HeldChange]],
    *,
    copy_new: bool,
) -> None:
    """The changes that are new or differ from what was held, and the held ones now gone (a prior back to 0).
    `copy_new`: the new ones by COPY (an export page, whose table lock keeps anyone else from adding them)."""
    upserts: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    gone: list[tuple[str, str, str]] = []
    for key in sorted(history):
        tenant, invoice_id = key
        was = held.get(key, {})
        now = history[key]
        for change_key, change in now.items():
            held_change = was.get(change_key)
            if held_change != change:
                (new if copy_new and held_change is None else upserts).append(
                    {"tenant_id": tenant, "invoice_id": invoice_id, "change_key": change_key, "kind": change.kind,
                     "on_date": change.on_date, "amount": change.amount, "open_delta": change.open_delta}
                )  # fmt: skip
        gone.extend((tenant, invoice_id, change_key) for change_key in was if change_key not in now)
    await _copy_rows(session, "invoice_changes", HISTORY_COLUMNS, new)
    if upserts:
        await session.execute(UPSERT_HISTORY, columns_of(upserts, HISTORY_COLUMNS))
    if gone:
        await session.execute(
            DELETE_CHANGES, {"t": [g[0] for g in gone], "i": [g[1] for g in gone], "k": [g[2] for g in gone]}
        )


async def _write_settled_and_closed(
    session: AsyncSession, after: dict[InvoiceKey, Any], history: dict[InvoiceKey, dict[str, HeldChange]]
) -> None:
    """settled_on (the day a payment or credit closed it; NULL while a reversal has it open) and closed_on (its void
    or write-off), written only where they change."""
    rows: list[dict[str, Any]] = []
    for key in sorted(after):
        inv = after[key]
        held = history.get(key, {})
        settled = None  # settled_on() of an invoice still owed, without sorting its changes
        if inv.balance == 0:
            settled = settled_on([Change(k, c.kind, c.on_date, c.amount) for k, c in held.items()], inv.balance)
        closed = max((c.on_date for c in held.values() if c.kind in CLOSE_KINDS), default=None)
        if (settled, closed) != (inv.settled_on, inv.closed_on):
            rows.append({"tenant_id": key[0], "invoice_id": key[1], "settled_on": settled, "closed_on": closed})
    if rows:
        await session.execute(SET_SETTLED_AND_CLOSED, columns_of(rows, SETTLED_COLUMNS))


def _contribution(
    invoices: dict[InvoiceKey, Any], history: dict[InvoiceKey, dict[str, HeldChange]], sign: int,
    ar: dict[tuple[Any, ...], list[Any]], sales: dict[tuple[Any, ...], list[Any]],
) -> None:  # fmt: skip
    """Add (sign +1) or take away (-1) the invoices' part of ar_daily (their changes, by due date and day) and of
    sales_daily (their totals, unless void)."""
    for key, inv in invoices.items():
        for change in history.get(key, {}).values():
            cell = ar.setdefault((key[0], inv.currency, inv.due_date, change.on_date), [Decimal(0), 0])
            cell[0] += sign * change.amount
            cell[1] += sign * change.open_delta
        if inv.status != "void":
            cell = sales.setdefault((key[0], inv.currency, inv.issue_date), [Decimal(0), 0])
            cell[0] += sign * inv.total
            cell[1] += sign


async def _write_contributions(
    session: AsyncSession,
    before: dict[InvoiceKey, Any],
    held: dict[InvoiceKey, dict[str, HeldChange]],
    after: dict[InvoiceKey, Any],
    history: dict[InvoiceKey, dict[str, HeldChange]],
) -> None:
    """The touched invoices' contributions after the batch minus before it, added to the daily tables in key order
    (two batches meeting on a row lock it in the same order); the rows left at zero are dropped. An invoice the
    model did not have contributed nothing (the daily tables join invoices)."""
    ar: dict[tuple[Any, ...], list[Any]] = {}
    sales: dict[tuple[Any, ...], list[Any]] = {}
    _contribution(before, held, -1, ar, sales)
    _contribution(after, history, +1, ar, sales)
    ar_rows = [(*k, v[0], v[1]) for k, v in sorted(ar.items()) if v[0] or v[1]]
    sales_rows = [(*k, v[0], v[1]) for k, v in sorted(sales.items()) if v[0] or v[1]]
    if not ar_rows and not sales_rows:
        return
    params = {
        "at": [r[0] for r in ar_rows], "ac": [r[1] for r in ar_rows], "ad": [r[2] for r in ar_rows],
        "ao": [r[3] for r in ar_rows], "aa": [r[4] for r in ar_rows], "an": [r[5] for r in ar_rows],
        "st": [r[0] for r in sales_rows], "sc": [r[1] for r in sales_rows], "sd": [r[2] for r in sales_rows],
        "sa": [r[3] for r in sales_rows], "sn": [r[4] for r in sales_rows],
    }  # fmt: skip
    zeros: set[tuple[Any, ...]] = set()
    for row in (await session.execute(ADD_CONTRIBUTIONS, params)).all():
        if row.amount == 0 and row.n == 0:
            zeros.add(tuple(row[:5]))
    if zeros:
        await _drop_zeros(session, zeros)


async def _latest_steps(session: AsyncSession, keys: list[InvoiceKey]) -> None:
    """The latest step (due_at, then step_id) about each invoice that shows none yet."""
    rows: list[dict[str, Any]] = []
    for tenant, ids in by_tenant(keys).items():
        links = (await session.execute(STEPS_OF_INVOICES, {"tenant": tenant, "ids": ids})).all()
        if not links:
            continue
        steps = {
            st.step_id: st
            for st in await session.execute(
                STEPS_BY_ID, {"tenant": tenant, "steps": sorted({r.step_id for r in links})}
            )
        }
        latest: dict[str, Any] = {}
        for link in links:
            st = steps.get(link.step_id)
            held = latest.get(link.invoice_id)
            if st is not None and (held is None or (st.due_at, st.step_id) > (held.due_at, held.step_id)):
                latest[link.invoice_id] = st
        rows.extend(
            {"tenant_id": tenant, "invoice_id": invoice_id, "step_id": st.step_id, "step_name": st.step_name,
             "due_at": st.due_at, "next_step_name": st.next_step_name, "next_step_at": st.next_step_at}
            for invoice_id, st in sorted(latest.items())
        )  # fmt: skip
    if rows:
        await session.execute(LATEST_STEP, columns_of(rows, LATEST_STEP_COLUMNS))
