"""calls.caller_uniqueid: match AMI calls with queue_log callids

Revision ID: 0004
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("caller_uniqueid", sa.String(length=80), nullable=True))
        batch.create_index("ix_calls_caller_uniqueid", ["caller_uniqueid"])


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_index("ix_calls_caller_uniqueid")
        batch.drop_column("caller_uniqueid")
