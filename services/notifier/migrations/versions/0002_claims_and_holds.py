"""claimed deliveries (claim token + lease), held deliveries, two lookup indexes made partial

Revision ID: 0002
Revises: 0001

A claimed delivery is rendered but not yet handed to a provider: safe to send after a crash, so another
dispatcher may take it over once its lease (`claimed_until`, database time) has expired. `held` needs no
column: a delivery reached outside its contact window waits in that status for dunning.step.replanned.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Searched only for a value (a receipt's provider id, a STOP reply's number), NULL until the send or the claim:
# partial, so the pending, claimed and sending versions of a delivery stay out of them (the claim step added
# one more version of every row; this takes out more index entries than it adds).
_PARTIAL = {
    "ix_deliveries_provider_message": ("provider_message_id", "provider_message_id IS NOT NULL"),
    "ix_deliveries_recipient": ("recipient", "recipient IS NOT NULL"),
}


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("claim_token", sa.UUID(), nullable=True))
    op.add_column("deliveries", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    # Few rows are ever claimed at once: a small partial index serves the take-over of expired leases.
    # Its predicate is claimed_until (set exactly while a row is `claimed`), not status: a statement that
    # only says status = 'claimed' (the send gate's, by primary key) must not be planned as a scan of it.
    op.create_index(
        "ix_deliveries_claimed",
        "deliveries",
        ["claimed_until"],
        unique=False,
        postgresql_where=sa.text("claimed_until IS NOT NULL"),
    )
    for name, (column, where) in _PARTIAL.items():
        op.drop_index(name, table_name="deliveries")
        op.create_index(name, "deliveries", [column], unique=False, postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, (column, _) in _PARTIAL.items():
        op.drop_index(name, table_name="deliveries")
        op.create_index(name, "deliveries", [column], unique=False)
    # A claimed delivery was never handed to a provider: back to pending, where the old dispatcher finds it.
    # Held ones stay held: the old dispatcher would send them outside their contact window.
    op.execute("UPDATE deliveries SET status = 'pending' WHERE status = 'claimed'")
    op.drop_index(
        "ix_deliveries_claimed", table_name="deliveries", postgresql_where=sa.text("claimed_until IS NOT NULL")
    )
    op.drop_column("deliveries", "claimed_until")
    op.drop_column("deliveries", "claim_token")
