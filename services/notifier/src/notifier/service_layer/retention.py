"""Message retention: rendered bodies and provider payloads older than MESSAGE_RETENTION_DAYS are deleted.

A housekeeping timer (the kit's TimerLoop, like the dispatcher's): each pass clears at most `batch_size`
deliveries' subject, bodies and recipient-free texts and `batch_size` receipts' payloads, in one short
transaction, claimed with SKIP LOCKED so replicas share the work and nothing waits on a dispatcher batch.
The age is judged by the injected clock against when the body was rendered (`rendered_at`) and when the
provider's callback was received (`received_at`). What stays is the fact of each contact - the delivery row
with its channel, step, status, attempts and sent_at - which the contact caps and Reg F's 3-year records need.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

_PURGE_BODIES = text(
    """
    UPDATE deliveries SET subject = NULL, body_text = NULL, body_html = NULL, rendered_at = NULL
    WHERE id IN (
        SELECT id FROM deliveries
        WHERE rendered_at < :cutoff AND status NOT IN ('claimed', 'sending')
        ORDER BY rendered_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)

_PURGE_PAYLOADS = text(
    """
    UPDATE receipts SET payload = '{}'::jsonb
    WHERE (provider, provider_event_id) IN (
        SELECT provider, provider_event_id FROM receipts
        WHERE received_at < :cutoff AND payload <> '{}'::jsonb
        ORDER BY received_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)

_DUE = text(
    """
    SELECT (SELECT count(*) FROM deliveries WHERE rendered_at < :cutoff AND status NOT IN ('claimed', 'sending'))
         + (SELECT count(*) FROM receipts WHERE received_at < :cutoff AND payload <> '{}'::jsonb) AS due,
           LEAST((SELECT min(rendered_at) FROM deliveries
                  WHERE rendered_at < :cutoff AND status NOT IN ('claimed', 'sending')),
                 (SELECT min(received_at) FROM receipts WHERE received_at < :cutoff AND payload <> '{}'::jsonb))
           AS oldest
    """
)


class MessageRetention:
    def __init__(self, sessions: Callable[[], Any], retention_days: int, batch_size: int = 500) -> None:
        self.sessions = sessions
        self.retention = timedelta(days=retention_days)
        self.batch_size = batch_size

    async def purge_due(self, now: datetime) -> int:
        """One batch of each; the number of rows cleared (0: nothing due, the loop waits on the clock)."""
        params = {"cutoff": now - self.retention, "limit": self.batch_size}
        async with self.sessions() as session, session.begin():
            bodies = await session.execute(_PURGE_BODIES, params)
            payloads = await session.execute(_PURGE_PAYLOADS, params)
        return int(bodies.rowcount or 0) + int(payloads.rowcount or 0)

    async def due_stats(self, now: datetime) -> tuple[int, float]:
        cutoff = now - self.retention
        async with self.sessions() as session:
            row = (await session.execute(_DUE, {"cutoff": cutoff})).one()
        oldest = (cutoff - row.oldest).total_seconds() if row.oldest is not None else 0.0
        return int(row.due), oldest
