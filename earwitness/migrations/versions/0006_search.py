"""search: search_segments plus the engine's full-text structures (FTS5 or pg_trgm/tsvector)

Revision ID: 0006
Revises: 0005

The structures that are not tables of the model (FTS5 virtual tables and their
triggers on SQLite, GIN indexes on PostgreSQL) are all named ``search_fts*`` so the
schema comparison can leave exactly them out (``earwitness.models.search.include_name``).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("earwitness.migrations")

SQLITE_UP = [
    # Trigram: substrings of 3+ characters in any script, no word segmentation needed.
    "CREATE VIRTUAL TABLE search_fts USING fts5(norm, content='search_segments', "
    "content_rowid='segment_id', tokenize='trigram')",
    # Word tokens (each CJK character its own token): one- and two-character queries.
    "CREATE VIRTUAL TABLE search_fts_words USING fts5(tokens, content='search_segments', "
    "content_rowid='segment_id', tokenize='unicode61 remove_diacritics 0')",
    """CREATE TRIGGER search_fts_ai AFTER INSERT ON search_segments BEGIN
         INSERT INTO search_fts(rowid, norm) VALUES (new.segment_id, new.norm);
         INSERT INTO search_fts_words(rowid, tokens) VALUES (new.segment_id, new.tokens);
       END""",
    """CREATE TRIGGER search_fts_ad AFTER DELETE ON search_segments BEGIN
         INSERT INTO search_fts(search_fts, rowid, norm)
           VALUES ('delete', old.segment_id, old.norm);
         INSERT INTO search_fts_words(search_fts_words, rowid, tokens)
           VALUES ('delete', old.segment_id, old.tokens);
       END""",
    """CREATE TRIGGER search_fts_au AFTER UPDATE ON search_segments BEGIN
         INSERT INTO search_fts(search_fts, rowid, norm)
           VALUES ('delete', old.segment_id, old.norm);
         INSERT INTO search_fts_words(search_fts_words, rowid, tokens)
           VALUES ('delete', old.segment_id, old.tokens);
         INSERT INTO search_fts(rowid, norm) VALUES (new.segment_id, new.norm);
         INSERT INTO search_fts_words(rowid, tokens) VALUES (new.segment_id, new.tokens);
       END""",
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS search_fts_au",
    "DROP TRIGGER IF EXISTS search_fts_ad",
    "DROP TRIGGER IF EXISTS search_fts_ai",
    "DROP TABLE IF EXISTS search_fts_words",
    "DROP TABLE IF EXISTS search_fts",
]


def _pg_trgm_schema(bind: sa.Connection) -> str | None:
    """Make pg_trgm available (in ``public`` when we create it, so dropping one tenant's
    schema cannot take it away from the others); None when it cannot be had."""
    find = sa.text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'"
    )
    schema = bind.scalar(find)
    if schema is not None:
        return str(schema)
    for statement in (
        "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    ):
        try:
            with bind.begin_nested():
                bind.execute(sa.text(statement))
        except sa.exc.DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            log.warning("search: %s failed (%s)", statement, reason)
            continue
        schema = bind.scalar(find)
        if schema is not None:
            return str(schema)
    return None


def _postgres_up(bind: sa.Connection) -> None:
    op.execute(
        "CREATE INDEX search_fts_tokens_tsv ON search_segments "
        "USING gin (to_tsvector('simple'::regconfig, tokens))"
    )
    schema = _pg_trgm_schema(bind)
    if schema is None:
        log.warning(
            "search: the pg_trgm extension is not available; substring search still works "
            "but scans search_segments (ask the DBA for CREATE EXTENSION pg_trgm, then run "
            "'earwitness search reindex', which adds the index)"
        )
        return
    quoted = bind.dialect.identifier_preparer.quote_identifier(schema)
    op.execute(
        "CREATE INDEX search_fts_norm_trgm ON search_segments "
        f"USING gin (norm {quoted}.gin_trgm_ops)"
    )


def upgrade() -> None:
    op.create_table(
        "search_segments",
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("norm", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name="fk_search_segments_segment_id_segments",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name="fk_search_segments_recording_id_recordings",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("segment_id", name="pk_search_segments"),
    )
    op.create_index("ix_search_segments_recording_id", "search_segments", ["recording_id"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        _postgres_up(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_DOWN:
            op.execute(statement)
    op.drop_index("ix_search_segments_recording_id", table_name="search_segments")
    op.drop_table("search_segments")
