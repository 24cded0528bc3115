"""job system for the Celery scale-out and the tracker leader (issue 16)

Adds ``jobs.worker_deaths`` (lease-expiry re-claims, capped) and ``jobs.dispatched_at``
(when the job was last sent to the Celery broker). The tracker leader lock is a
PostgreSQL advisory lock (or a file lock on SQLite), so it needs no table.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("worker_deaths", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("dispatched_at")
        batch.drop_column("worker_deaths")
