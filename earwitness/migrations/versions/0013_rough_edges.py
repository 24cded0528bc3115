"""agent identities, QA override history and the other user-facing fixes (issue 18)

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # QA override history needs no table: rows were never updated, and withdrawing an
    # override adds a row with status "removed" (earwitness.qa.store.remove_override).
    op.create_table(
        "agent_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_identities")),
        sa.UniqueConstraint("identifier", name=op.f("uq_agent_identities_identifier")),
    )
    op.create_index(op.f("ix_agent_identities_name"), "agent_identities", ["name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_agent_identities_name"), table_name="agent_identities")
    op.drop_table("agent_identities")
