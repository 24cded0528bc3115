"""cases, evidence custody and tracks: supersede links, custody data, first-ask owner

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-26 10:00:00

Branches from 0001 beside the telephony branch (0002); ``upgrade heads`` applies both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("supersedes_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("supersede_reason", sa.String(length=500), nullable=True))
        batch_op.create_index(batch_op.f("ix_evidence_supersedes_id"), ["supersedes_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_evidence_supersedes_id_evidence"), "evidence", ["supersedes_id"], ["id"]
        )
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.alter_column("source", server_default=None)

    with op.batch_alter_table("custody_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.create_unique_constraint(batch_op.f("uq_custody_entries_prev_hash"), ["prev_hash"])
    with op.batch_alter_table("custody_entries", schema=None) as batch_op:
        batch_op.alter_column("data", server_default=None)

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_owner", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("source_call_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("reopened_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index(batch_op.f("ix_cases_source_call_id"), ["source_call_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_cases_source_call_id_calls"), "calls", ["source_call_id"], ["id"]
        )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.alter_column("reopened_count", server_default=None)

    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("coord_system", sa.String(length=10), nullable=False, server_default="wgs84")
        )
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.alter_column("coord_system", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_column("coord_system")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_cases_source_call_id_calls"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_cases_source_call_id"))
        batch_op.drop_column("reopened_count")
        batch_op.drop_column("source_call_id")
        batch_op.drop_column("first_owner")
    with op.batch_alter_table("custody_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_custody_entries_prev_hash"), type_="unique")
        batch_op.drop_column("data")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_evidence_supersedes_id_evidence"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_evidence_supersedes_id"))
        batch_op.drop_column("supersede_reason")
        batch_op.drop_column("supersedes_id")
        batch_op.drop_column("source")
