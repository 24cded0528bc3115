"""calls that move: queue visits (overflow), transfers, agent state spans

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_queue_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wait_s", sa.Double(), nullable=True),
        sa.Column("result", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"],
            name=op.f("fk_call_queue_visits_call_id_calls"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queues.id"], name=op.f("fk_call_queue_visits_queue_id_queues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_queue_visits")),
    )  # fmt: skip
    op.create_index(op.f("ix_call_queue_visits_call_id"), "call_queue_visits", ["call_id"])
    op.create_table(
        "call_transfers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transferer", sa.String(length=120), nullable=True),
        sa.Column("target", sa.String(length=120), nullable=False),
        sa.Column("result", sa.String(length=40), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"],
            name=op.f("fk_call_transfers_call_id_calls"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_transfers")),
    )  # fmt: skip
    op.create_index(op.f("ix_call_transfers_call_id"), "call_transfers", ["call_id"])
    op.create_table(
        "agent_state_spans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=120), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"],
            name=op.f("fk_agent_state_spans_agent_id_agents"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_state_spans")),
    )  # fmt: skip
    op.create_index(
        "ix_agent_state_spans_agent_started", "agent_state_spans", ["agent_id", "started_at"]
    )
    op.create_index(op.f("ix_agent_state_spans_ended_at"), "agent_state_spans", ["ended_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_agent_state_spans_ended_at"), table_name="agent_state_spans")
    op.drop_index("ix_agent_state_spans_agent_started", table_name="agent_state_spans")
    op.drop_table("agent_state_spans")
    op.drop_index(op.f("ix_call_transfers_call_id"), table_name="call_transfers")
    op.drop_table("call_transfers")
    op.drop_index(op.f("ix_call_queue_visits_call_id"), table_name="call_queue_visits")
    op.drop_table("call_queue_visits")
