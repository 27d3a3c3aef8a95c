"""Claims on due deliveries in SQL: which rows are due, claiming them FOR UPDATE SKIP LOCKED (replicas share
the work), the claim's lease, handing claims back, closing the rows a batch decided without a send, and the
send gate's `sending` mark. The lease is database time: a simulated clock jumping days must not expire a live
claim. The per-batch statements take one array per column (see delivery_records.py)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import and_, false, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.adapters import orm

_CLAIM = text(
    "SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= :now "
    "ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED"
)
# Claims whose dispatcher died (or stalled past its lease): rendered, never handed to a provider, so safe to
# take over.
_CLAIM_EXPIRED = text(
    "SELECT * FROM deliveries WHERE claimed_until IS NOT NULL AND claimed_until < now() AND status = 'claimed' "
    "ORDER BY claimed_until LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK_CLAIMED = text(
    """
    UPDATE deliveries AS d
    SET status = 'claimed', claim_token = :token, claimed_until = now() + make_interval(secs => :lease),
        provider = u.provider, recipient = u.recipient, template_id = u.template, locale = u.locale,
        subject = u.subject, body_text = u.body_text, body_html = u.body_html, rendered_at = :now,
        updated_at = now()
    FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_provider AS text[]), CAST(:b_recipient AS text[]),
                CAST(:b_template AS text[]), CAST(:b_locale AS text[]), CAST(:b_subject AS text[]),
                CAST(:b_text AS text[]), CAST(:b_html AS text[]))
         AS u(id, provider, recipient, template, locale, subject, body_text, body_html)
    WHERE d.id = u.id
    """
)
# By the batch's own ids (primary key): the partial index of claims also holds the dead entries of every claim
# since the last vacuum, and a scan of it per batch cost more than the batch's gate marks.
_RENEW = text(
    "UPDATE deliveries SET claimed_until = now() + make_interval(secs => :lease) "
    "WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'claimed' AND claim_token = :token"
)
# A batch's claims it did not send (stopping, the gate unreachable): back to `pending`, due at once.
_RELEASE = text(
    "UPDATE deliveries SET status = 'pending', claim_token = NULL, claimed_until = NULL, updated_at = now() "
    "WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'claimed' AND claim_token = :token"
)
_CLOSE = text(
    """
    UPDATE deliveries AS d SET status = u.status, error = u.error, recipient = u.recipient, claimed_until = NULL,
        updated_at = now()
    FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_status AS text[]), CAST(:b_error AS text[]),
                CAST(:b_recipient AS text[])) AS u(id, status, error, recipient)
    WHERE d.id = u.id
    """
)
# Held at the gate: only while the row is still this batch's claim (not cancelled, not taken over).
_HOLD_CLAIMED = text(
    """
    UPDATE deliveries
    SET status = 'held', error = (CAST(:b_error AS text[]))[array_position(CAST(:b_id AS uuid[]), id)],
        claimed_until = NULL, updated_at = now()
    WHERE id = ANY(CAST(:b_id AS uuid[])) AND status = 'claimed' AND claim_token = :token
    RETURNING id
    """
)
# The send gate's mark, straight on the driver (send_gate.py). Unqualified: the service's schema is on the
# connection's search_path. updated_at starts the stuck sweep's clock (wall time): from here on the outcome can
# only be recorded or written off, never sent again. Found by primary key (id = ANY), each row's own claim
# token picked by its position: this runs hundreds of times a second and must never be planned as a scan (a
# join on unnest() was, once the table had grown).
MARK_SENDING = """
UPDATE deliveries SET status = 'sending', attempts = attempts + 1, claimed_until = NULL, updated_at = now()
WHERE id = ANY($1::uuid[]) AND status = 'claimed' AND claim_token = ($2::uuid[])[array_position($1::uuid[], id)]
RETURNING id
"""

# The statements' array parameters, in the order of RenderedClaim's and DecidedRow's fields.
_CLAIM_COLUMNS = ("b_id", "b_provider", "b_recipient", "b_template", "b_locale", "b_subject", "b_text", "b_html")
_CLOSE_COLUMNS = ("b_id", "b_status", "b_error", "b_recipient")
_JSON_COLUMNS = ("step", "fallback_channels", "trace_context")


class RenderedClaim(NamedTuple):
    """What a claimed row keeps of its rendering until it is sent (the message's text part per channel)."""

    id: uuid.UUID
    provider: str
    recipient: str
    template_id: str
    locale: str
    subject: str | None
    text: str | None
    html: str | None


class DecidedRow(NamedTuple):
    """A row decided without a send: skipped, failed or held, with the reason."""

    id: uuid.UUID
    status: str
    error: str
    recipient: str | None


def _decoded(row: Mapping[str, Any]) -> dict[str, Any]:
    """A claimed row as a dict, its JSONB columns parsed (a textual query returns them as JSON text)."""
    out = dict(row)
    for key in _JSON_COLUMNS:
        if isinstance(out[key], str | bytes):
            out[key] = orjson.loads(out[key])
    return out


async def due_work(session: AsyncSession, now: datetime, look_for_expired: bool) -> tuple[bool, bool]:
    """(any `pending` row due, any claim whose lease expired). Expired leases are looked for only when asked:
    the partial index of claims holds the dead entries of every claim since the last vacuum, and min() walks
    them from the start."""
    d = orm.deliveries.c
    pending = select(d.id).where(d.status == "pending", d.next_attempt_at <= now).limit(1).exists()
    if look_for_expired:
        # An EXISTS with `claimed_until < now()` was planned as a table scan: it expects many rows to match.
        oldest_lease = select(func.min(d.claimed_until)).where(d.claimed_until.isnot(None)).scalar_subquery()
        query = select(pending, oldest_lease < func.now())
    else:
        query = select(pending, false())
    row = (await session.execute(query)).one()
    return bool(row[0]), bool(row[1])


async def open_work(session: AsyncSession, now: datetime) -> tuple[int, datetime | None, int]:
    """(due `pending` rows, the oldest one's due time, `claimed` rows)."""
    d = orm.deliveries.c
    due = and_(d.status == "pending", d.next_attempt_at <= now)
    # Two counts, each on its own partial index (an OR of both was a candidate for a table scan).
    pending = select(func.count()).where(due).scalar_subquery()
    oldest = select(func.min(d.next_attempt_at)).where(due).scalar_subquery()
    claimed = select(func.count()).where(d.claimed_until.isnot(None)).scalar_subquery()
    row = (await session.execute(select(pending, oldest, claimed))).one()
    return int(row[0]), row[1], int(row[2])


async def claim_due(session: AsyncSession, now: datetime, limit: int, take_over: bool) -> list[dict[str, Any]]:
    """Up to `limit` rows locked for this transaction: expired claims first (they have waited a lease already)
    when `take_over`, then due `pending` rows."""
    raw: list[Any] = []
    if take_over:
        raw += (await session.execute(_CLAIM_EXPIRED, {"limit": limit})).mappings().all()
    if len(raw) < limit:
        raw += (await session.execute(_CLAIM, {"now": now, "limit": limit - len(raw)})).mappings().all()
    return [_decoded(r) for r in raw]


async def mark_claimed(
    session: AsyncSession, rendered: list[RenderedClaim], token: uuid.UUID, lease_seconds: float, now: datetime
) -> None:
    """Rendered and claimed, not yet handed to anyone: after a crash this is still safe to send."""
    if rendered:
        columns = dict(zip(_CLAIM_COLUMNS, map(list, zip(*rendered, strict=True)), strict=True))
        await session.execute(_MARK_CLAIMED, {**columns, "token": token, "lease": lease_seconds, "now": now})


async def close_decided(session: AsyncSession, decided: list[DecidedRow]) -> None:
    if decided:
        await session.execute(_CLOSE, dict(zip(_CLOSE_COLUMNS, map(list, zip(*decided, strict=True)), strict=True)))


async def renew_lease(session: AsyncSession, ids: list[uuid.UUID], token: uuid.UUID, lease_seconds: float) -> None:
    await session.execute(_RENEW, {"ids": ids, "token": token, "lease": lease_seconds})


async def release(session: AsyncSession, ids: list[uuid.UUID], token: uuid.UUID) -> int:
    """Back to `pending`, due at once; how many were still this claim's."""
    result: Any = await session.execute(_RELEASE, {"ids": ids, "token": token})
    return int(result.rowcount)


async def hold_claimed(
    session: AsyncSession, ids: list[uuid.UUID], reasons: list[str], token: uuid.UUID
) -> set[uuid.UUID]:
    """`held` with the reason, for the rows still this claim's."""
    return set((await session.execute(_HOLD_CLAIMED, {"b_id": ids, "b_error": reasons, "token": token})).scalars())
