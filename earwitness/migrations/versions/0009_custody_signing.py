"""custody signing: Ed25519 signature + key id per entry, RFC 3161 timestamps of the head

Revision ID: 0009
Revises: 0008

Existing entries keep NULL signatures: ``verify`` reports them as written before
signing, and the first signed entry (whose signed bytes include ``prev_hash``)
pins that unsigned prefix.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("custody_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
    op.create_table(
        "custody_timestamps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("tsa_url", sa.Text(), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_timestamps")),
    )
    op.create_index(op.f("ix_custody_timestamps_entry_id"), "custody_timestamps", ["entry_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_custody_timestamps_entry_id"), table_name="custody_timestamps")
    op.drop_table("custody_timestamps")
    with op.batch_alter_table("custody_entries", schema=None) as batch_op:
        batch_op.drop_column("key_id")
        batch_op.drop_column("signature")
