"""The ledger facts of a batch (events or an export page) applied set-wise: invoices, their changes, ar_daily and
sales_daily in one transaction, one statement per step whatever the batch's size.

How ar_daily and sales_daily stay equal to the GROUP BY over their sources (the invariant a test pins): the
invoices the batch touches are locked, their contributions are subtracted, every change is applied (new changes,
the restated `issue` and `prior`, voids, due-date and total moves, open/closed recomputed), and their
contributions are added back. Whatever the batch does to an invoice (a restatement, a due date moved, a currency
corrected) is then reflected, at the cost of reading the few changes of the invoices it touched.

`open_delta` and `settled_on` are worked out from the invoice's changes in business-date order (not arrival
order): so the model built from the stream and the one built by a backfill (which sees no arrival order) agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.events import supersedes
from insights.adapters.rows import by_tenant, columns_of, in_batch, unnest
from insights.domain.facts import CHANGE_RANK, Facts

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

# Same-day changes in a stable order (domain/facts.CHANGE_RANK); RECOUNT_OPEN and SETTLED_AND_CLOSED apply
# domain/facts.open_deltas and settled_on set-wise (test_apply pins them together).
CHANGE_ORDER = "CASE c.kind " + " ".join(f"WHEN '{kind}' THEN {rank}" for kind, rank in CHANGE_RANK.items()) + " END"

LOCK_TABLE = text("LOCK TABLE invoices IN ROW EXCLUSIVE MODE")
LOCK = text(f"SELECT i.invoice_id, i.status FROM invoices i WHERE {in_batch('i')} ORDER BY i.invoice_id FOR UPDATE")

OF_INVOICE = "c.tenant_id = i.tenant_id AND c.invoice_id = i.invoice_id"
# An invoice change's invoice, by its whole primary key (a lookup per change, whatever the statistics say).
INVOICE_OF_CHANGE = (
    "SELECT i.tenant_id, i.currency, i.due_date FROM invoices i "
    "WHERE i.tenant_id = c.tenant_id AND i.invoice_id = c.invoice_id"
)
_AR_CONTRIBUTION = (
    "INSERT INTO ar_daily (tenant_id, currency, due_date, on_date, amount, open_count) "
    "SELECT i.tenant_id, i.currency, i.due_date, c.on_date, "
    "CAST(:sign AS integer) * sum(c.amount), CAST(:sign AS integer) * sum(c.open_delta) "
    f"FROM invoice_changes c CROSS JOIN LATERAL ({INVOICE_OF_CHANGE}) i WHERE {in_batch('c')} "
    "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 "
    "ON CONFLICT (tenant_id, currency, due_date, on_date) DO UPDATE "
    "SET amount = ar_daily.amount + excluded.amount, open_count = ar_daily.open_count + excluded.open_count "
    "RETURNING 'ar' AS kind, tenant_id, currency, due_date, on_date, amount, open_count AS n"
)
AR_DROP_ZEROS = text(
    "DELETE FROM ar_daily a USING unnest(CAST(:t AS varchar[]), CAST(:c AS varchar[]), CAST(:d AS date[]), "
    "CAST(:o AS date[])) AS z(tenant_id, currency, due_date, on_date) "
    "WHERE a.tenant_id = z.tenant_id AND a.currency = z.currency AND a.due_date = z.due_date "
    "AND a.on_date = z.on_date AND a.amount = 0 AND a.open_count = 0"
)
_SALES_CONTRIBUTION = (
    "INSERT INTO sales_daily (tenant_id, currency, issue_date, amount, invoice_count) "
    "SELECT i.tenant_id, i.currency, i.issue_date, CAST(:sign AS integer) * sum(i.total), "
    "CAST(:sign AS integer) * count(*) "
    f"FROM invoices i WHERE {in_batch('i')} AND i.status <> 'void' "
    "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 "
    "ON CONFLICT (tenant_id, currency, issue_date) DO UPDATE "
    "SET amount = sales_daily.amount + excluded.amount, "
    "invoice_count = sales_daily.invoice_count + excluded.invoice_count "
    "RETURNING 'sales' AS kind, tenant_id, currency, issue_date, CAST(NULL AS date), amount, invoice_count"
)
# Both daily tables in one round trip; the rows they leave at zero are dropped once the batch is applied.
CONTRIBUTIONS = text(
    f"WITH ar AS ({_AR_CONTRIBUTION}), sales AS ({_SALES_CONTRIBUTION}) SELECT * FROM ar UNION ALL SELECT * FROM sales"
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
RESTATE_ISSUE = text(
    "INSERT INTO invoice_changes (tenant_id, invoice_id, change_key, kind, on_date, amount) "
    f"SELECT i.tenant_id, i.invoice_id, 'issue', 'issue', i.issue_date, i.total "
    f"FROM invoices i WHERE {in_batch('i')} "
    "ON CONFLICT (tenant_id, invoice_id, change_key) DO UPDATE SET on_date = excluded.on_date, "
    "amount = excluded.amount WHERE (invoice_changes.on_date, invoice_changes.amount) "
    "IS DISTINCT FROM (excluded.on_date, excluded.amount)"
)
_INSERT_CHANGES = (
    f"INSERT INTO invoice_changes ({', '.join(n for n, _ in CHANGE_COLUMNS)}) "
    f"SELECT * FROM {unnest(CHANGE_COLUMNS)} ON CONFLICT (tenant_id, invoice_id, change_key) "
)
# From the stream a change is a fact that happened once: a second arrival is that same fact.
INSERT_CHANGES = text(_INSERT_CHANGES + "DO NOTHING")
# From an export the ledger (the book of record) says what the change is now.
UPSERT_CHANGES = text(
    _INSERT_CHANGES + "DO UPDATE SET kind = excluded.kind, on_date = excluded.on_date, amount = excluded.amount "
    "WHERE (invoice_changes.on_date, invoice_changes.amount) IS DISTINCT FROM (excluded.on_date, excluded.amount)"
)
# A void or write-off cancels the balance just before it: the export says it; from the stream it is what the
# invoice's changes add up to. The payments a void hands back (ledger-sync makes them unapplied credit) stay
# where they were: they were paid on their day, and the void cancelled what was still open (the export lists
# them the same way, so a backfill and the stream agree).
_CLOSE_SELECT = (
    "SELECT r.tenant_id, r.invoice_id, r.kind, r.kind, r.on_date, -coalesce(r.amount, "
    "(SELECT sum(c.amount) FROM invoice_changes c WHERE c.tenant_id = r.tenant_id AND c.invoice_id = r.invoice_id"
    " AND c.kind NOT IN ('void', 'write_off')), 0) "
    f"FROM {unnest(CLOSE_COLUMNS)} JOIN invoices i ON i.tenant_id = r.tenant_id AND i.invoice_id = r.invoice_id "
)
INSERT_CLOSES = text(
    "INSERT INTO invoice_changes (tenant_id, invoice_id, change_key, kind, on_date, amount) "
    + _CLOSE_SELECT
    + "ON CONFLICT (tenant_id, invoice_id, change_key) DO NOTHING"
)
UPSERT_CLOSES = text(
    "INSERT INTO invoice_changes (tenant_id, invoice_id, change_key, kind, on_date, amount) "
    + _CLOSE_SELECT
    + "ON CONFLICT (tenant_id, invoice_id, change_key) DO UPDATE SET on_date = excluded.on_date, "
    "amount = excluded.amount"
)
# prior: what the ledger had settled that no change of the model explains (ERP-side, before the platform saw it),
# restated whenever the invoice is touched so its changes always add up to the ledger's balance.
RESTATE_PRIOR = text(
    "WITH want AS ("
    " SELECT i.tenant_id, i.invoice_id, i.issue_date, "
    "  i.balance - coalesce(c.amount, 0) AS amount"
    " FROM invoices i CROSS JOIN LATERAL (SELECT sum(c.amount) AS amount FROM invoice_changes c"
    "  WHERE c.tenant_id = i.tenant_id AND c.invoice_id = i.invoice_id AND c.kind <> 'prior') c"
    f" WHERE {in_batch('i')}"
    "), gone AS ("
    " DELETE FROM invoice_changes c USING want w WHERE c.tenant_id = w.tenant_id AND c.invoice_id = w.invoice_id"
    " AND c.change_key = 'prior' AND w.amount = 0"
    ") INSERT INTO invoice_changes (tenant_id, invoice_id, change_key, kind, on_date, amount) "
    "SELECT tenant_id, invoice_id, 'prior', 'prior', issue_date, amount FROM want WHERE amount <> 0 "
    "ON CONFLICT (tenant_id, invoice_id, change_key) DO UPDATE SET on_date = excluded.on_date, "
    "amount = excluded.amount WHERE (invoice_changes.on_date, invoice_changes.amount) "
    "IS DISTINCT FROM (excluded.on_date, excluded.amount)"
)
# +1 on the change that takes the running balance (in business-date order) from zero to non-zero, -1 back.
RECOUNT_OPEN = text(
    "WITH running AS ("
    f" SELECT c.tenant_id, c.invoice_id, c.change_key, c.open_delta, {CHANGE_ORDER} AS rank, c.on_date,"
    "  sum(c.amount) OVER (PARTITION BY c.tenant_id, c.invoice_id"
    f"   ORDER BY c.on_date, {CHANGE_ORDER}, c.change_key ROWS UNBOUNDED PRECEDING) AS after"
    f" FROM invoice_changes c WHERE {in_batch('c')}"
    "), deltas AS ("
    " SELECT tenant_id, invoice_id, change_key, open_delta,"
    "  (after <> 0)::int - (coalesce(lag(after) OVER (PARTITION BY tenant_id, invoice_id"
    "   ORDER BY on_date, rank, change_key), 0) <> 0)::int AS want FROM running"
    ") UPDATE invoice_changes c SET open_delta = d.want FROM deltas d "
    "WHERE c.tenant_id = d.tenant_id AND c.invoice_id = d.invoice_id AND c.change_key = d.change_key "
    "AND d.open_delta <> d.want"
)
# settled_on: the day a payment or credit closed it (NULL while a reversal has it open); closed_on: its void or
# write-off.
_SETTLED = (
    "CASE WHEN i.balance = 0 THEN (SELECT CASE WHEN c.kind IN ('payment', 'credit') THEN c.on_date END"
    f" FROM invoice_changes c WHERE {OF_INVOICE} AND c.open_delta = -1"
    f" ORDER BY c.on_date DESC, {CHANGE_ORDER} DESC, c.change_key DESC LIMIT 1) END"
)
_CLOSED = f"(SELECT max(c.on_date) FROM invoice_changes c WHERE {OF_INVOICE} AND c.kind IN ('void', 'write_off'))"
SETTLED_AND_CLOSED = text(
    f"UPDATE invoices i SET settled_on = {_SETTLED}, closed_on = {_CLOSED} "
    f"WHERE {in_batch('i')} AND (i.settled_on, i.closed_on) IS DISTINCT FROM ({_SETTLED}, {_CLOSED})"
)
# An invoice that arrives after a step about it (the steps topic ran ahead) still shows its latest step.
LATEST_STEP = text(
    "UPDATE invoices i SET last_step_id = s.step_id, last_step_name = s.step_name, last_step_at = s.due_at, "
    "next_step_name = s.next_step_name, next_step_at = s.next_step_at "
    "FROM (SELECT DISTINCT ON (si.tenant_id, si.invoice_id) si.tenant_id, si.invoice_id, st.step_id, st.step_name,"
    " st.due_at, st.next_step_name, st.next_step_at"
    f" FROM step_invoices si"
    " JOIN steps st ON st.tenant_id = si.tenant_id AND st.step_id = si.step_id"
    f" WHERE {in_batch('si')} ORDER BY si.tenant_id, si.invoice_id, st.due_at DESC, st.step_id DESC) s "
    "WHERE i.tenant_id = s.tenant_id AND i.invoice_id = s.invoice_id AND i.last_step_id IS NULL"
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


async def _contributions(session: AsyncSession, scope: dict[str, Any], sign: int, zeros: set[tuple[Any, ...]]) -> None:
    """Add (+1) or take away (-1) the touched invoices' part of ar_daily and sales_daily; `zeros` collects the rows
    it left at zero (dropped at the end unless the batch gave them something again)."""
    for row in (await session.execute(CONTRIBUTIONS, {**scope, "sign": sign})).all():
        if row.amount == 0 and row.n == 0:
            zeros.add(tuple(row[:5]))


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


async def apply_ledger(session: AsyncSession, facts: Facts, *, from_export: bool = False) -> None:
    """Apply the batch's ledger facts. `from_export`: the rows come from ledger-sync's export (the book of record
    now), so a change already held is restated to what the export says instead of kept."""
    touched = facts.touched_invoices()
    if touched:
        # The table lock first, before any row lock: a backfill page takes it in SHARE ROW EXCLUSIVE mode, and
        # both then take their row locks (customers, ar_daily) in the same order, never in a cycle.
        await session.execute(LOCK_TABLE)
    if facts.customers:
        rows = _unique(facts.customers, "tenant_id", "customer_id")
        await session.execute(UPSERT_CUSTOMERS, columns_of(rows, CUSTOMER_COLUMNS))
    if facts.erasures:
        rows = _unique(facts.erasures, "tenant_id", "customer_id")
        await session.execute(ERASE_CUSTOMERS, columns_of(rows, ERASURE_COLUMNS))
    if touched:
        scopes = [{"tenant": tenant, "ids": ids} for tenant, ids in by_tenant(touched).items()]
        await _apply_invoices(session, facts, scopes, from_export=from_export)
    elif facts.disputed:
        await session.execute(PATCH_INVOICES, columns_of(invoice_patches(facts, {}), PATCH_COLUMNS))
    if facts.disputes_opened:
        rows = _unique(facts.disputes_opened, "tenant_id", "invoice_id", "opened_at")
        await session.execute(OPEN_DISPUTES, columns_of(rows, DISPUTE_COLUMNS))
    if facts.disputes_resolved:
        await session.execute(RESOLVE_DISPUTES, columns_of(facts.disputes_resolved, RESOLVED_COLUMNS))


async def _apply_invoices(
    session: AsyncSession, facts: Facts, scopes: list[dict[str, Any]], *, from_export: bool
) -> None:
    """The statements over "the invoices the batch touched" run per tenant (a batch usually has one)."""
    zeros: set[tuple[Any, ...]] = set()
    for scope in scopes:
        locked = (await session.execute(LOCK, scope)).all()
        if locked:  # an invoice the model does not have yet contributes nothing (the daily tables join invoices)
            await _contributions(session, {**scope, "ids": [row.invoice_id for row in locked]}, -1, zeros)
    snapshots = newest_per_invoice(facts.invoices)
    if snapshots:
        await session.execute(UPSERT_INVOICES, columns_of(snapshots.values(), INVOICE_COLUMNS))
    patches = invoice_patches(facts, snapshots)
    if patches:
        await session.execute(PATCH_INVOICES, columns_of(patches, PATCH_COLUMNS))
    # The issue change follows the invoice's total and issue date: only a snapshot can move them.
    restated = [{"tenant": t, "ids": ids} for t, ids in by_tenant(snapshots).items()]
    for scope in restated:
        await session.execute(RESTATE_ISSUE, scope)
    if facts.changes:
        rows = _unique(facts.changes, "tenant_id", "invoice_id", "change_key", last=from_export)
        await session.execute(UPSERT_CHANGES if from_export else INSERT_CHANGES, columns_of(rows, CHANGE_COLUMNS))
    if facts.closes:
        rows = _unique(facts.closes, "tenant_id", "invoice_id", "kind", last=from_export)
        await session.execute(UPSERT_CLOSES if from_export else INSERT_CLOSES, columns_of(rows, CLOSE_COLUMNS))
    owners = sorted({(r["tenant_id"], r["customer_id"]) for r in snapshots.values()})
    for scope in scopes:
        await session.execute(RESTATE_PRIOR, scope)
        await session.execute(RECOUNT_OPEN, scope)
        await session.execute(SETTLED_AND_CLOSED, scope)
        await _contributions(session, scope, +1, zeros)
    if zeros:
        await _drop_zeros(session, zeros)
    for scope in restated:
        await session.execute(LATEST_STEP, scope)
    if owners:
        await session.execute(CUSTOMER_TERMS, {"tenants": [t for t, _ in owners], "customers": [c for _, c in owners]})
