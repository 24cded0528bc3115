"""Where a term meets a database: one small interface, an FTS5 and a PostgreSQL implementation.

Both backends answer the same question the same way — "which segments contain this
folded term, and how well?" — so the query tree, filters, ranking order and
highlights above them are shared, and the same tests run on both:

- terms of three or more characters are substrings of the folded text (FTS5 trigram
  on SQLite; ``LIKE`` served by a pg_trgm GIN index on PostgreSQL);
- shorter terms (京, 迟到, ok) go to the word index, where every CJK character is its
  own token and a phrase query demands adjacency (FTS5 ``unicode61``; ``tsvector``
  with ``<->`` on PostgreSQL). Trigram indexes cannot serve them.

Every user string reaches SQL as a bound parameter, and inside FTS5/tsquery syntax
only as a quoted literal, so no input is ever interpreted as query syntax or SQL.
"""

from __future__ import annotations

from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TextualSelect

from earwitness.search.normalize import is_cjk, tokens
from earwitness.search.query import Term

# Length normalisation of the PostgreSQL substring score: the typical segment length.
PG_AVG_CHARS = 40.0


def trigrams(text: str) -> list[str]:
    return sorted({text[i : i + 3] for i in range(len(text) - 2)})


def _word_phrase(term: Term) -> tuple[list[str], bool]:
    """Tokens of a short term and whether the last one is a prefix: a trailing letter or
    digit may continue (京A → 京A12345), a CJK character is a whole token already."""
    toks = tokens(term.text).split()
    prefix = term.kind == "prefix" or not is_cjk(term.text[-1])
    return toks, prefix


class SearchBackend(Protocol):
    name: str

    def term_select(self, term: Term, key: str) -> TextualSelect:
        """A select of (sid, score): the segments matching ``term``, higher score better."""
        ...

    def fuzzy_candidates(self, session: Session, text: str, limit: int) -> list[tuple[int, str]]:
        """(segment_id, norm) of segments sharing at least one trigram with ``text``."""
        ...

    def after_bulk_load(self, session: Session) -> None:
        """Compact or create what a bulk (re)index leaves behind."""
        ...


class SqliteFts5:
    name = "sqlite-fts5"

    def term_select(self, term: Term, key: str) -> TextualSelect:
        if term.short:
            toks, prefix = _word_phrase(term)
            match = '"' + " ".join(toks) + '"' + (" *" if prefix else "")
            sql = (
                "SELECT rowid AS sid, -bm25(search_fts_words) AS score FROM search_fts_words "
                f"WHERE search_fts_words MATCH :{key}"
            )
        else:
            match = '"' + term.text.replace('"', '""') + '"'
            sql = f"SELECT rowid AS sid, -bm25(search_fts) AS score FROM search_fts WHERE search_fts MATCH :{key}"  # noqa: E501
        return (
            sa.text(sql)
            .bindparams(sa.bindparam(key, match))
            .columns(sa.column("sid", sa.Integer), sa.column("score", sa.Float))
        )

    def fuzzy_candidates(self, session: Session, text: str, limit: int) -> list[tuple[int, str]]:
        grams = trigrams(text)
        if not grams:
            return []
        match = " OR ".join('"' + g.replace('"', '""') + '"' for g in grams)
        rows = session.execute(
            sa.text(
                "SELECT s.segment_id, s.norm FROM search_fts f "
                "JOIN search_segments s ON s.segment_id = f.rowid "
                "WHERE search_fts MATCH :m ORDER BY f.rank LIMIT :lim"
            ),
            {"m": match, "lim": limit},
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def after_bulk_load(self, session: Session) -> None:
        session.execute(sa.text("INSERT INTO search_fts(search_fts) VALUES ('optimize')"))
        session.execute(
            sa.text("INSERT INTO search_fts_words(search_fts_words) VALUES ('optimize')")
        )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _tsquery(toks: list[str], prefix: bool) -> str:
    lexemes = ["'" + t.replace("'", "''").replace("\\", "\\\\") + "'" for t in toks]
    if prefix:
        lexemes[-1] += ":*"
    return " <-> ".join(lexemes)


class PostgresTrgm:
    name = "postgresql-trgm"

    def term_select(self, term: Term, key: str) -> TextualSelect:
        if term.short:
            toks, prefix = _word_phrase(term)
            sql = (
                "SELECT segment_id AS sid, ts_rank(to_tsvector('simple'::regconfig, tokens), "
                f"to_tsquery('simple'::regconfig, :{key})) AS score FROM search_segments "
                f"WHERE to_tsvector('simple'::regconfig, tokens) @@ "
                f"to_tsquery('simple'::regconfig, :{key})"
            )
            return (
                sa.text(sql)
                .bindparams(sa.bindparam(key, _tsquery(toks, prefix)))
                .columns(sa.column("sid", sa.Integer), sa.column("score", sa.Float))
            )
        # BM25-like: occurrences, saturated and normalised by length (no IDF on this side).
        tf = (
            f"((char_length(norm) - char_length(replace(norm, CAST(:{key}_raw AS text), ''))) "
            f"/ CAST(char_length(CAST(:{key}_raw AS text)) AS float8))"
        )
        sql = (
            f"SELECT segment_id AS sid, {tf} * 2.2 / ({tf} + 1.2 * (0.25 + 0.75 * "
            f"char_length(norm) / {PG_AVG_CHARS})) AS score FROM search_segments "
            f"WHERE norm LIKE :{key} ESCAPE '\\'"
        )
        return (
            sa.text(sql)
            .bindparams(
                sa.bindparam(key, "%" + _like_escape(term.text) + "%"),
                sa.bindparam(f"{key}_raw", term.text),
            )
            .columns(sa.column("sid", sa.Integer), sa.column("score", sa.Float))
        )

    def fuzzy_candidates(self, session: Session, text: str, limit: int) -> list[tuple[int, str]]:
        grams = trigrams(text)
        if not grams:
            return []
        norm = sa.column("norm", sa.Text)
        query = (
            sa.select(sa.column("segment_id", sa.Integer), norm)
            .select_from(sa.table("search_segments"))
            .where(sa.or_(*(norm.like("%" + _like_escape(g) + "%", escape="\\") for g in grams)))
            .limit(limit)
        )
        return [(int(r[0]), str(r[1])) for r in session.execute(query)]

    def after_bulk_load(self, session: Session) -> None:
        ensure_pg_trgm_index(session)
        session.execute(sa.text("ANALYZE search_segments"))


def ensure_pg_trgm_index(session: Session) -> bool:
    """Add the trigram index when pg_trgm has become available since the migration ran."""
    exists = session.scalar(
        sa.text("SELECT 1 FROM pg_indexes WHERE indexname = 'search_fts_norm_trgm' "
                "AND schemaname = current_schema()")
    )  # fmt: skip
    if exists:
        return True
    schema = session.scalar(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
            "ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
        )
    )
    if schema is None:
        return False
    quoted = session.get_bind().dialect.identifier_preparer.quote_identifier(str(schema))
    session.execute(
        sa.text(
            "CREATE INDEX IF NOT EXISTS search_fts_norm_trgm ON search_segments "
            f"USING gin (norm {quoted}.gin_trgm_ops)"
        )
    )
    return True


def backend_for(session: Session) -> SearchBackend:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return SqliteFts5()
    if dialect == "postgresql":
        return PostgresTrgm()
    raise NotImplementedError(f"no search backend for {dialect}")
