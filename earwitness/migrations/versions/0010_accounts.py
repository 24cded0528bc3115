"""accounts: passwords, PBX agent link and queues per user; browser sessions; login tokens

Revision ID: 0010
Revises: 0009

Roles are renamed to the ones the authorisation matrix knows: ``supervisor`` becomes
``lead`` and ``viewer`` (read-only, never given a route of its own) becomes ``agent``,
the narrowest role, so no existing user gains rights by the rename.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("pbx_agent", sa.String(length=120), nullable=True))
        batch_op.add_column(
            sa.Column("queues", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    users = sa.table("users", sa.column("role", sa.String))
    op.execute(users.update().where(users.c.role == "supervisor").values(role="lead"))
    op.execute(users.update().where(users.c.role == "viewer").values(role="agent"))

    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])
    op.create_table(
        "login_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_login_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_login_tokens_token_hash")),
    )
    op.create_index(op.f("ix_login_tokens_user_id"), "login_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_login_tokens_user_id"), table_name="login_tokens")
    op.drop_table("login_tokens")
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
    users = sa.table("users", sa.column("role", sa.String))
    op.execute(users.update().where(users.c.role == "lead").values(role="supervisor"))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("queues")
        batch_op.drop_column("pbx_agent")
        batch_op.drop_column("password_hash")
