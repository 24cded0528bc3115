"""hardening: where the queue_log reader stopped (issue 19)

``queue_log_cursors`` remembers, per queue_log path, the file's inode and size and the
byte offset after the last line read, so a resync seeks instead of re-reading the log.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_log_cursors",
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("read_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_queue_log_cursors")),
    )


def downgrade() -> None:
    op.drop_table("queue_log_cursors")
