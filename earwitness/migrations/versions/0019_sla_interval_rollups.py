"""SLA roll-ups per UTC quarter-hour (issue 17, SLA at scale)

Four tables (``models/sla_rollups.py``): ``sla_intervals`` (partial SLA totals per
profile, UTC quarter-hour/hour/day, queue, class and ring count), ``sla_agent_intervals``
(answered calls per interval, queue and agent), ``sla_rollup_profiles`` (the cadence/seconds
pairs kept) and ``sla_dirty_intervals`` (quarter-hours to recompute).

Triggers keep the roll-ups right whoever writes: every insert, delete or relevant update
of ``calls`` (times, wait, outcome, kind, queue, agent) and of ring-out rows of
``agent_attempts`` marks the UTC quarter-hour(s) it touched in ``sla_dirty_intervals``;
readers compute marked quarters from ``calls`` and ``telephony.sla_rollups.refresh``
recomputes them. The refresh locks ``sla_dirty_intervals`` (EXCLUSIVE) on PostgreSQL
before it clears marks: that waits for every writer that has marked and not yet
committed, so no write can land in a quarter between its recomputation and the clearing
of its mark. PostgreSQL uses statement-level triggers with transition tables (one
insert per statement, so bulk loads stay cheap); SQLite row triggers.

Backfill: every quarter-hour that already has calls is marked, so the first refresh (the
first ``/api/sla`` read, or ``refresh``) computes its rows from the calls; the figures are
exact from the first read on, since a marked quarter is always read from ``calls``.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# Columns of ``calls`` the SLA figures read: an update of any other column marks nothing.
_CALL_COLUMNS = "entered_at, answered_at, ended_at, wait_s, outcome, kind, queue_id, agent_id"

_PG_BUCKET = "floor(extract(epoch FROM {0}) / 900)::bigint"
_SQLITE_BUCKET = "CAST(strftime('%s', {0}) AS INTEGER) / 900"

_PG_FUNCTIONS = [
    f"""
CREATE FUNCTION sla_mark_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO sla_dirty_intervals (bucket)
      SELECT DISTINCT {_PG_BUCKET.format("entered_at")} FROM new_rows
      ORDER BY 1 ON CONFLICT DO NOTHING;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO sla_dirty_intervals (bucket)
      SELECT DISTINCT {_PG_BUCKET.format("entered_at")} FROM old_rows
      ORDER BY 1 ON CONFLICT DO NOTHING;
  ELSE
    INSERT INTO sla_dirty_intervals (bucket)
      SELECT DISTINCT b FROM (
        SELECT {_PG_BUCKET.format("o.entered_at")} AS b_old,
               {_PG_BUCKET.format("n.entered_at")} AS b_new
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.entered_at, o.answered_at, o.ended_at, o.wait_s, o.outcome, o.kind,
               o.queue_id, o.agent_id)
          IS DISTINCT FROM (n.entered_at, n.answered_at, n.ended_at, n.wait_s, n.outcome,
               n.kind, n.queue_id, n.agent_id)
      ) changed CROSS JOIN LATERAL (VALUES (changed.b_old), (changed.b_new)) AS v(b)
      ORDER BY 1 ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION sla_mark_attempts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO sla_dirty_intervals (bucket)
      SELECT DISTINCT {_PG_BUCKET.format("c.entered_at")}
      FROM new_rows a JOIN calls c ON c.id = a.call_id WHERE a.result = 'rona'
      ORDER BY 1 ON CONFLICT DO NOTHING;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO sla_dirty_intervals (bucket)
      SELECT DISTINCT {_PG_BUCKET.format("c.entered_at")}
      FROM old_rows a JOIN calls c ON c.id = a.call_id WHERE a.result = 'rona'
      ORDER BY 1 ON CONFLICT DO NOTHING;
  ELSE
    INSERT INTO sla_dirty_intervals (bucket)
      SELECT DISTINCT {_PG_BUCKET.format("c.entered_at")}
      FROM old_rows o JOIN new_rows n ON n.id = o.id
      JOIN calls c ON c.id IN (o.call_id, n.call_id)
      WHERE (o.result = 'rona' OR n.result = 'rona')
        AND (o.result, o.call_id) IS DISTINCT FROM (n.result, n.call_id)
      ORDER BY 1 ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$
""",
]

_PG_TRIGGERS = [
    "CREATE TRIGGER sla_calls_ins AFTER INSERT ON calls REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION sla_mark_calls()",
    "CREATE TRIGGER sla_calls_upd AFTER UPDATE ON calls "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION sla_mark_calls()",
    "CREATE TRIGGER sla_calls_del AFTER DELETE ON calls REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION sla_mark_calls()",
    "CREATE TRIGGER sla_attempts_ins AFTER INSERT ON agent_attempts "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sla_mark_attempts()",
    "CREATE TRIGGER sla_attempts_upd AFTER UPDATE ON agent_attempts "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION sla_mark_attempts()",
    "CREATE TRIGGER sla_attempts_del AFTER DELETE ON agent_attempts "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sla_mark_attempts()",
]


def _sqlite_mark(row: str) -> str:
    return (
        "INSERT OR IGNORE INTO sla_dirty_intervals (bucket) "
        f"VALUES ({_SQLITE_BUCKET.format(row + '.entered_at')});"
    )


def _sqlite_mark_call(call_id: str) -> str:
    return (
        "INSERT OR IGNORE INTO sla_dirty_intervals (bucket) "
        f"SELECT {_SQLITE_BUCKET.format('entered_at')} FROM calls WHERE id = {call_id};"
    )


_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER sla_calls_ins AFTER INSERT ON calls BEGIN {_sqlite_mark('NEW')} END",
    f"CREATE TRIGGER sla_calls_upd AFTER UPDATE OF {_CALL_COLUMNS} ON calls "
    f"BEGIN {_sqlite_mark('OLD')} {_sqlite_mark('NEW')} END",
    f"CREATE TRIGGER sla_calls_del AFTER DELETE ON calls BEGIN {_sqlite_mark('OLD')} END",
    "CREATE TRIGGER sla_attempts_ins AFTER INSERT ON agent_attempts "
    f"WHEN NEW.result = 'rona' BEGIN {_sqlite_mark_call('NEW.call_id')} END",
    "CREATE TRIGGER sla_attempts_upd AFTER UPDATE OF result, call_id ON agent_attempts "
    "WHEN OLD.result = 'rona' OR NEW.result = 'rona' "
    f"BEGIN {_sqlite_mark_call('OLD.call_id')} {_sqlite_mark_call('NEW.call_id')} END",
    "CREATE TRIGGER sla_attempts_del AFTER DELETE ON agent_attempts "
    f"WHEN OLD.result = 'rona' BEGIN {_sqlite_mark_call('OLD.call_id')} END",
]

_TRIGGER_NAMES = [
    ("sla_calls_ins", "calls"),
    ("sla_calls_upd", "calls"),
    ("sla_calls_del", "calls"),
    ("sla_attempts_ins", "agent_attempts"),
    ("sla_attempts_upd", "agent_attempts"),
    ("sla_attempts_del", "agent_attempts"),
]


def upgrade() -> None:
    op.create_table(
        "sla_rollup_profiles",
        sa.Column("period_ms", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seconds_us", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("period_ms", "seconds_us", name=op.f("pk_sla_rollup_profiles")),
    )
    op.create_table(
        "sla_intervals",
        sa.Column("period_ms", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seconds_us", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("grain", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("queue_id", sa.Integer(), autoincrement=False, nullable=False),
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
            "queue_id",
            "cls",
            "rings",
            name=op.f("pk_sla_intervals"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "sla_agent_intervals",
        sa.Column("grain", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("queue_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("agent_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "grain", "bucket", "queue_id", "agent_id", name=op.f("pk_sla_agent_intervals")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "sla_dirty_intervals",
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_sla_dirty_intervals")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in (_PG_FUNCTIONS + _PG_TRIGGERS) if postgres else _SQLITE_TRIGGERS:
        op.execute(statement)
    # Backfill: mark every quarter-hour that has calls (see the module docstring).
    bucket = (_PG_BUCKET if postgres else _SQLITE_BUCKET).format("entered_at")
    op.execute(f"INSERT INTO sla_dirty_intervals (bucket) SELECT DISTINCT {bucket} FROM calls")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, table in _TRIGGER_NAMES:
        op.execute(
            f"DROP TRIGGER IF EXISTS {name} ON {table}"
            if postgres
            else f"DROP TRIGGER IF EXISTS {name}"
        )
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS sla_mark_attempts()")
        op.execute("DROP FUNCTION IF EXISTS sla_mark_calls()")
    op.drop_table("sla_dirty_intervals")
    op.drop_table("sla_agent_intervals")
    op.drop_table("sla_intervals")
    op.drop_table("sla_rollup_profiles")
