"""follow-ups of resolved cases: survey calls, agent call-backs, SMS

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("agent", sa.String(length=120), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("max_tries", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_result", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"],
            name=op.f("fk_follow_ups_case_id_cases"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_ups")),
    )  # fmt: skip
    op.create_index(op.f("ix_follow_ups_case_id"), "follow_ups", ["case_id"])
    op.create_index(op.f("ix_follow_ups_phone"), "follow_ups", ["phone"])


def downgrade() -> None:
    op.drop_index(op.f("ix_follow_ups_phone"), table_name="follow_ups")
    op.drop_index(op.f("ix_follow_ups_case_id"), table_name="follow_ups")
    op.drop_table("follow_ups")
