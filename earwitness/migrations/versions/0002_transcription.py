"""transcription: recording codec and dual-mono flag, one transcript per recording and model

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("codec", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("dual_mono", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("transcripts", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_transcripts_recording_model", ["recording_id", "model"]
        )


def downgrade() -> None:
    with op.batch_alter_table("transcripts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_transcripts_recording_model", type_="unique")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_column("dual_mono")
        batch_op.drop_column("codec")
