"""outbox priority lane: settlements are published ahead of the backlog (dunning_events.outbox)

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Expand only: a constant default adds the column without rewriting the table, and a relay of the release
    # still running neither writes nor reads it (its rows are bulk rows, published in id order as before).
    op.add_column('outbox', sa.Column('priority', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index('ix_outbox_unpublished_priority', 'outbox', ['id'], unique=False,
                    postgresql_where=sa.text('published_at IS NULL AND priority'))
    op.create_index('ix_outbox_unpublished_key', 'outbox', ['key', 'id'], unique=False,
                    postgresql_where=sa.text('published_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_outbox_unpublished_key', table_name='outbox',
                  postgresql_where=sa.text('published_at IS NULL'))
    op.drop_index('ix_outbox_unpublished_priority', table_name='outbox',
                  postgresql_where=sa.text('published_at IS NULL AND priority'))
    op.drop_column('outbox', 'priority')
