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

from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TextualSelect

from earwitness.search.normalize import is_cjk, tokens
from earwitness.search.query import And, Node, Or, Term

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

    def term_select(
        self, term: Term, key: str, floor: int | None = None, ceiling: int | None = None
    ) -> TextualSelect:
        """A select of (sid, score): the segments matching ``term``, higher score better;
        only those with ``floor <= id <= ceiling`` where given (the ids the query can match,
        or the newest matches): the engine then scores no row outside that range."""
        ...

    def term_ids(self, term: Term, key: str) -> TextualSelect:
        """A select of (sid): the same segments as :meth:`term_select`, unscored — counting
        and finding the newest matches never pay for ranking."""
        ...

    def tree_ids(self, node: Node) -> TextualSelect | None:
        """One select of (sid) for a whole query tree when the engine can evaluate it in a
        single index lookup (else None: the caller combines :meth:`term_ids` with set
        operations)."""
        ...

    def fuzzy_candidates(self, session: Session, text: str, limit: int) -> list[tuple[int, str]]:
        """(segment_id, norm) of segments sharing at least one trigram with ``text``."""
        ...

    def after_bulk_load(self, session: Session) -> None:
        """Compact or create what a bulk (re)index leaves behind."""
        ...


class SqliteFts5:
    name = "sqlite-fts5"

    @staticmethod
    def _match(term: Term) -> tuple[str, str]:
        """(FTS5 table, MATCH expression) of a term."""
        if term.short:
            toks, prefix = _word_phrase(term)
            return "search_fts_words", '"' + " ".join(toks) + '"' + (" *" if prefix else "")
        return "search_fts", '"' + term.text.replace('"', '""') + '"'

    def term_select(
        self, term: Term, key: str, floor: int | None = None, ceiling: int | None = None
    ) -> TextualSelect:
        table, match = self._match(term)
        sql = (
            f"SELECT rowid AS sid, -bm25({table}) AS score FROM {table} WHERE {table} MATCH :{key}"
        )
        params: list[sa.BindParameter[Any]] = [sa.bindparam(key, match)]
        if floor is not None:  # FTS5 seeks its doclists to the rowid: bm25 only for the window
            sql += f" AND rowid >= :{key}_floor"
            params.append(sa.bindparam(f"{key}_floor", floor))
        if ceiling is not None:
            sql += f" AND rowid <= :{key}_ceiling"
            params.append(sa.bindparam(f"{key}_ceiling", ceiling))
        return (
            sa.text(sql)
            .bindparams(*params)
            .columns(sa.column("sid", sa.Integer), sa.column("score", sa.Float))
        )

    def term_ids(self, term: Term, key: str) -> TextualSelect:
        table, match = self._match(term)
        return (
            sa.text(f"SELECT rowid AS sid FROM {table} WHERE {table} MATCH :{key}")
            .bindparams(sa.bindparam(key, match))
            .columns(sa.column("sid", sa.Integer))
        )

    def tree_ids(self, node: Node) -> TextualSelect | None:
        """FTS5 merges the doclists of AND/OR/NOT itself, streaming (8 ms for 司机 AND 迟到
        at 1 M segments, where INTERSECT of the two id sets takes 50 ms) — when every term
        lives in the same FTS5 table and none is fuzzy."""
        found = self._fts_expr(node)
        if found is None:
            return None
        table, match = found
        return (
            sa.text(f"SELECT rowid AS sid FROM {table} WHERE {table} MATCH :tree")
            .bindparams(sa.bindparam("tree", match))
            .columns(sa.column("sid", sa.Integer))
        )

    def _fts_expr(self, node: Node) -> tuple[str, str] | None:
        if isinstance(node, Term):
            return None if node.kind == "fuzzy" else self._match(node)
        parts = [self._fts_expr(i) for i in node.items]
        negated = [self._fts_expr(i) for i in node.negated] if isinstance(node, And) else []
        every = [*parts, *negated]
        if any(p is None for p in every) or len({p[0] for p in every if p}) != 1:
            return None
        table = every[0][0] if every[0] else ""
        joiner = " OR " if isinstance(node, Or) else " AND "
        expr = "(" + joiner.join(f"({p[1]})" for p in parts if p) + ")"
        for p in negated:
            if p:
                expr = f"({expr} NOT ({p[1]}))"
        return table, expr

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

    @staticmethod
    def _where(term: Term, key: str) -> tuple[str, list[sa.BindParameter[str]]]:
        """The WHERE clause matching a term, and its parameters."""
        if term.short:
            toks, prefix = _word_phrase(term)
            return (
                f"search_fts_tsv @@ to_tsquery('simple'::regconfig, :{key})",
                [sa.bindparam(key, _tsquery(toks, prefix))],
            )
        return (
            f"norm LIKE :{key} ESCAPE '\\'",
            [sa.bindparam(key, "%" + _like_escape(term.text) + "%")],
        )

    def term_ids(self, term: Term, key: str) -> TextualSelect:
        where, params = self._where(term, key)
        return (
            sa.text(f"SELECT segment_id AS sid FROM search_segments WHERE {where}")
            .bindparams(*params)
            .columns(sa.column("sid", sa.Integer))
        )

    def tree_ids(self, node: Node) -> TextualSelect | None:
        """One WHERE for the whole tree: the planner combines the per-term GIN scans
        (BitmapAnd/BitmapOr) instead of materialising INTERSECT/EXCEPT of id sets."""
        params: list[sa.BindParameter[str]] = []
        where = self._tree_where(node, params)
        if where is None:
            return None
        return (
            sa.text(f"SELECT segment_id AS sid FROM search_segments WHERE {where}")
            .bindparams(*params)
            .columns(sa.column("sid", sa.Integer))
        )

    def _tree_where(self, node: Node, params: list[sa.BindParameter[str]]) -> str | None:
        if isinstance(node, Term):
            if node.kind == "fuzzy" and not node.short:
                return None
            where, more = self._where(node, f"w{len(params)}")
            params.extend(more)
            return f"({where})"
        parts = [self._tree_where(i, params) for i in node.items]
        negated = (
            [self._tree_where(i, params) for i in node.negated] if isinstance(node, And) else []
        )
        if any(p is None for p in [*parts, *negated]):
            return None
        expr = "(" + (" OR " if isinstance(node, Or) else " AND ").join(p for p in parts if p) + ")"
        for p in negated:
            expr = f"({expr} AND NOT {p})"
        return expr

    def term_select(
        self, term: Term, key: str, floor: int | None = None, ceiling: int | None = None
    ) -> TextualSelect:
        window = f" AND segment_id >= {int(floor)}" if floor is not None else ""
        window += f" AND segment_id <= {int(ceiling)}" if ceiling is not None else ""
        if term.short:
            toks, prefix = _word_phrase(term)
            sql = (
                "SELECT segment_id AS sid, ts_rank(search_fts_tsv, "
                f"to_tsquery('simple'::regconfig, :{key})) AS score FROM search_segments "
                f"WHERE search_fts_tsv @@ "
                f"to_tsquery('simple'::regconfig, :{key}){window}"
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
            f"WHERE norm LIKE :{key} ESCAPE '\\'{window}"
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
