"""qa: audit results per recording and QA overrides

Revision ID: 0007
Revises: 0005

Branches from 0005 beside the search branch (0006); ``upgrade heads`` applies both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qa_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("agent", sa.String(length=120), nullable=True),
        sa.Column("call_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"],
            name=op.f("fk_qa_results_recording_id_recordings"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["transcript_id"], ["transcripts.id"],
            name=op.f("fk_qa_results_transcript_id_transcripts"), ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_qa_results_call_id_calls")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qa_results")),
        sa.UniqueConstraint("recording_id", name=op.f("uq_qa_results_recording_id")),
    )  # fmt: skip
    op.create_index("ix_qa_results_agent_call_at", "qa_results", ["agent", "call_at"])
    op.create_index(op.f("ix_qa_results_transcript_id"), "qa_results", ["transcript_id"])
    op.create_index(op.f("ix_qa_results_call_id"), "qa_results", ["call_id"])
    op.create_table(
        "qa_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("by", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"],
            name=op.f("fk_qa_overrides_recording_id_recordings"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qa_overrides")),
    )  # fmt: skip
    op.create_index("ix_qa_overrides_recording_rule", "qa_overrides", ["recording_id", "rule_id"])


def downgrade() -> None:
    op.drop_index("ix_qa_overrides_recording_rule", table_name="qa_overrides")
    op.drop_table("qa_overrides")
    op.drop_index(op.f("ix_qa_results_call_id"), table_name="qa_results")
    op.drop_index(op.f("ix_qa_results_transcript_id"), table_name="qa_results")
    op.drop_index("ix_qa_results_agent_call_at", table_name="qa_results")
    op.drop_table("qa_results")
