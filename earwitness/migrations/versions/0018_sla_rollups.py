"""SLA and wallboard at call-centre scale (issue 17, part B)

No roll-up tables: ``/api/sla`` aggregates in SQL (``telephony/sla_sql.py``); the index
``ix_calls_sla`` covers that query so a month is read from the index alone. Two more make
the wallboard independent of history size: calls in progress by ``outcome`` and agents
ringing now by ``agent_attempts.result``.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_calls_outcome_entered_at", "calls", ["outcome", "entered_at"])
    op.create_index("ix_agent_attempts_result", "agent_attempts", ["result"])
    op.create_index(
        "ix_calls_sla",
        "calls",
        ["entered_at", "kind", "outcome", "queue_id", "agent_id", "answered_at", "wait_s"],
    )


def downgrade() -> None:
    op.drop_index("ix_calls_sla", table_name="calls")
    op.drop_index("ix_agent_attempts_result", table_name="agent_attempts")
    op.drop_index("ix_calls_outcome_entered_at", table_name="calls")
