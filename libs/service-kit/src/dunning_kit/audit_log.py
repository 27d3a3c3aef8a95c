"""The audit log: which person changed what through a service's API, written with the change itself.

A call made for a person (a valid `Dunning-Actor` header, dunning_kit.actor) that changes state (POST, PUT,
PATCH, DELETE) leaves one row: who (the person's subject, name, e-mail, role), what (method, route template, the
path's ids), when (the service's clock), and the outcome.

* `applied`: the row is inserted by the engine's commit event into the first transaction the request commits,
  so the change and its row commit together or not at all, whichever route made the change and however it
  reaches the database (ORM, Core or the raw asyncpg driver). No route can forget it.
* `refused` (4xx) or `failed` (5xx): the request committed nothing; the row is written in a transaction of its
  own (who tried what, and the status they got) before the answer leaves, so whoever reads the log after the
  answer finds it. Only a 500 raised through the route is recorded after the kit's handler has answered.
* A 2xx that committed nothing changed nothing (a validation, a preview, a replay of an Idempotency-Key) and
  leaves no row. A call without a person (an API key alone) leaves none either: machine callers have the
  services' own records (events, the timeline).

A service keeps the log by adding the table to its metadata (`audit_log_table`, its migration creates it); the
kit's app then serves it at GET /v1/audit-log (dunning_kit.audit_api). A refused actor leaves nothing here.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, Integer, MetaData, String, Table, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from dunning_kit.actor import ActingRequest, current_request

TABLE = "audit_log"
APPLIED, REFUSED, FAILED = "applied", "refused", "failed"

log = logging.getLogger("dunning.audit_log")


def audit_log_table(metadata: MetaData) -> Table:
    """The audit log of one service, added to its metadata (its migration creates it)."""
    if TABLE in metadata.tables:
        return metadata.tables[TABLE]
    table = Table(
        TABLE,
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("tenant_id", String(100), nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("actor_sub", String(255), nullable=False),
        Column("actor_name", String(300), nullable=False),
        Column("actor_email", String(320), nullable=False),
        Column("actor_role", String(30), nullable=False),
        Column("method", String(10), nullable=False),
        Column("route", String(300), nullable=False),
        Column("path", String(2000), nullable=False),
        Column("targets", JSONB, nullable=False, server_default="{}"),
        Column("outcome", String(10), nullable=False),
        # The answer's status; NULL on an `applied` row, written before the answer was.
        Column("status", Integer),
    )
    # The read API filters by tenant, person and time, newest first.
    Index("ix_audit_log_tenant", table.c.tenant_id, table.c.id)
    Index("ix_audit_log_person", table.c.tenant_id, table.c.actor_sub, table.c.id)
    return table


def _row(acting: ActingRequest, outcome: str, status: int | None) -> dict[str, Any]:
    a = acting.actor
    return {
        "tenant_id": acting.tenant_id, "at": acting.at, "actor_sub": a.sub[:255], "actor_name": a.name[:300],
        "actor_email": a.email[:320], "actor_role": a.role[:30], "method": acting.method, "route": acting.route[:300],
        "path": acting.path[:2000], "targets": acting.targets, "outcome": outcome, "status": status,
    }  # fmt: skip


class AuditLog:
    """One service's audit log: the commit hook on its engine and the after-answer record."""

    def __init__(self, service: str, engine: AsyncEngine, table: Table) -> None:
        self.service = service
        self.engine = engine
        self.table = table
        event.listen(engine.sync_engine, "commit", self._with_the_change)

    def _with_the_change(self, conn: Connection) -> None:
        """Runs inside the commit, on its connection, before COMMIT is sent: the row joins the transaction."""
        acting = current_request()
        if acting is None or acting.recorded or acting.replay or not acting.changes_state:
            return
        if acting.service != self.service:  # another service in this process (tests run several in one)
            return
        acting.recorded = True
        conn.execute(self.table.insert().values(**_row(acting, APPLIED, None)))

    async def record_unchanged(self, acting: ActingRequest) -> None:
        """A call that committed nothing: record a refusal or a failure (a 2xx without a commit changed nothing)."""
        if acting.recorded or not acting.changes_state or acting.status < 400:
            return  # recorded with the change, or a 2xx (a replay among them) that committed nothing
        acting.recorded = True  # this row is the call's record: the commit hook must not add an `applied` one
        outcome = REFUSED if acting.status < 500 else FAILED
        try:
            async with self.engine.begin() as conn:
                await conn.execute(self.table.insert().values(**_row(acting, outcome, acting.status)))
        except Exception:  # the answer is out already; a lost record of a refusal must not become an error
            log.exception("%s: could not record a %s call in the audit log", self.service, outcome)
