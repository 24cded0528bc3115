"""SLA roll-ups per agent (issue 17: ``group_by=agent`` from roll-ups)

Two tables (``models/sla_rollups.py``): ``sla_agent_rollups`` (partial SLA totals per
profile, UTC quarter-hour/hour/day, agent, class and ring count; the agent is the one who
answered, or who let the call ring out for ring-out rows) and ``sla_agent_rollup_profiles``
(the cadence/seconds pairs they are kept for).

No backfill and no new marks: a profile's agent rows are built from every call when it is
first added (at start-up or on the first ``group_by=agent`` report), and from then on the
dirty quarter-hours of migration 0019 keep them right, like the queue roll-ups.

One trigger changes: an update of a ring-out's ``agent_id`` now marks the call's quarter
too (migration 0019 watched ``result`` and ``call_id`` only, enough while no roll-up
depended on who missed the call).

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_PG_BUCKET = "floor(extract(epoch FROM c.entered_at) / 900)::bigint"


def _pg_mark_attempts(watched: str) -> str:
    """Migration 0019's ``sla_mark_attempts``, an update comparing the ``watched`` columns."""
    o = ", ".join(f"o.{c}" for c in watched.split(", "))
    n = ", ".join(f"n.{c}" for c in watched.split(", "))
    return f"""
CREATE OR REPLACE FUNCTION sla_mark_attempts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO sla_dirty_intervals (bucket)
      SELECT DISTINCT {_PG_BUCKET}
      FROM new_rows a JOIN calls c ON c.id = a.call_id WHERE a.result = 'rona'
      ORDER BY 1 ON CONFLICT DO NOTHING;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO sla_dirty_intervals (bucket)
      SELECT DISTINCT {_PG_BUCKET}
      FROM old_rows a JOIN calls c ON c.id = a.call_id WHERE a.result = 'rona'
      ORDER BY 1 ON CONFLICT DO NOTHING;
  ELSE
    INSERT INTO sla_dirty_intervals (bucket)
      SELECT DISTINCT {_PG_BUCKET}
      FROM old_rows o JOIN new_rows n ON n.id = o.id
      JOIN calls c ON c.id IN (o.call_id, n.call_id)
      WHERE (o.result = 'rona' OR n.result = 'rona')
        AND ({o}) IS DISTINCT FROM ({n})
      ORDER BY 1 ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$
"""


def _sqlite_attempts_upd(watched: str) -> list[str]:
    mark = (
        "INSERT OR IGNORE INTO sla_dirty_intervals (bucket) "
        "SELECT CAST(strftime('%s', entered_at) AS INTEGER) / 900 FROM calls WHERE id = {0};"
    )
    return [
        "DROP TRIGGER IF EXISTS sla_attempts_upd",
        f"CREATE TRIGGER sla_attempts_upd AFTER UPDATE OF {watched} ON agent_attempts "
        "WHEN OLD.result = 'rona' OR NEW.result = 'rona' "
        f"BEGIN {mark.format('OLD.call_id')} {mark.format('NEW.call_id')} END",
    ]


def _watch(columns: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_mark_attempts(columns))
    else:
        for statement in _sqlite_attempts_upd(columns):
            op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "sla_agent_rollup_profiles",
        sa.Column("period_ms", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seconds_us", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "period_ms", "seconds_us", name=op.f("pk_sla_agent_rollup_profiles")
        ),
    )
    op.create_table(
        "sla_agent_rollups",
        sa.Column("period_ms", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seconds_us", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("grain", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("agent_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("cls", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("rings", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("wait_sum", sa.Float(), nullable=True),
        sa.Column("wait_max", sa.Float(), nullable=True),
        sa.Column("within", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "period_ms",
            "seconds_us",
            "grain",
            "bucket",
            "agent_id",
            "cls",
            "rings",
            name=op.f("pk_sla_agent_rollups"),
        ),
        sqlite_with_rowid=False,
    )
    _watch("result, call_id, agent_id")


def downgrade() -> None:
    _watch("result, call_id")
    op.drop_table("sla_agent_rollups")
    op.drop_table("sla_agent_rollup_profiles")
