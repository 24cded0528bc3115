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

import numpy as np
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

    def fuzzy_candidates(
        self, session: Session, text: str, limit: int, *, ranked: bool = False
    ) -> list[tuple[int, str]]:
        """(segment_id, norm) of segments sharing at least one trigram with ``text``, at most
        ``limit``: the best by the engine's ranking when there are more (or ``ranked``, then
        best first), else all of them in no particular order."""
        ...

    def newest(
        self, session: Session, matching: Any, limit: int, keep: int
    ) -> tuple[int, int, int, Any]:
        """(how many, smallest, largest) of the ``limit`` largest ``sid`` of the subquery
        ``matching`` (0, 0, 0 when none), reading no more of the index than those need, and
        the ``keep`` largest of them (a list, or a select of them; ``keep`` <= ``limit``).
        Aggregated in SQL: fetching 10 000 ids into Python costs more than finding them."""
        ...

    def after_bulk_load(self, session: Session) -> None:
        """Compact or create what a bulk (re)index leaves behind."""
        ...

    def begin(self, session: Session) -> None:
        """Set up the session's transaction for one search."""
        ...

    def at_least(self, session: Session, node: Node, n: int) -> bool:
        """True when a cheap look at the index proves that at least ``n`` segments match
        ``node`` (False: not proven, count them)."""
        ...

    def newest_of(
        self, session: Session, node: Node, matching: Any, limit: int, keep: int
    ) -> tuple[int, int, int, list[int]] | None:
        """What :meth:`newest` answers for ``matching`` (the unfiltered matches of ``node``),
        from a structure that serves the query tree directly, or None where there is none
        for this tree (then :meth:`newest` reads the matches)."""
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

    def fuzzy_candidates(
        self, session: Session, text: str, limit: int, *, ranked: bool = False
    ) -> list[tuple[int, str]]:
        """Ranking is only needed to choose among more than ``limit`` candidates, and costs
        most of the time (bm25 over an OR of trigrams: 42 ms for 2 900 rows at 1 M
        segments); counting them first takes under a millisecond."""
        grams = trigrams(text)
        if not grams:
            return []
        match = " OR ".join('"' + g.replace('"', '""') + '"' for g in grams)
        if not ranked:
            count = session.scalar(
                sa.text(
                    "SELECT count(*) FROM (SELECT rowid FROM search_fts "
                    "WHERE search_fts MATCH :m LIMIT :lim)"
                ),
                {"m": match, "lim": limit + 1},
            )
            ranked = (count or 0) > limit
        order = " ORDER BY f.rank" if ranked else ""
        rows = session.execute(
            sa.text(
                "SELECT s.segment_id, s.norm FROM search_fts f "
                "JOIN search_segments s ON s.segment_id = f.rowid "
                f"WHERE search_fts MATCH :m{order} LIMIT :lim"
            ),
            {"m": match, "lim": limit},
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def newest(
        self, session: Session, matching: Any, limit: int, keep: int
    ) -> tuple[int, int, int, Any]:
        """FTS5 serves ``ORDER BY rowid DESC`` itself, walking its doclists backwards and
        stopping at the limit (0.8 ms for the newest 10 001 of 300 000 hits of 您); the ids
        to keep stay a select, which costs a fraction of that when it is used."""
        sid = matching.c.sid
        count, low, high, _ = _newest(session, sid, None, None, limit, 0)
        return count, low, high, sa.select(sid).order_by(sid.desc()).limit(keep)

    def begin(self, session: Session) -> None:
        pass

    def newest_of(
        self, session: Session, node: Node, matching: Any, limit: int, keep: int
    ) -> tuple[int, int, int, list[int]] | None:
        return None  # FTS5 reads its doclists newest first already (see newest)

    def at_least(self, session: Session, node: Node, n: int) -> bool:
        """Count a subset of the matches in the word index: a substring term written in
        one script (``call you back``, ``司机迟到``) is found there as a phrase of its
        words, every such row contains the substring, and a 3-word phrase costs a fraction
        of the 11-trigram one (counting 10 001 of "call you back": 15-20 ms). Without
        negation, AND and OR of subsets are subsets too."""
        expr = self._word_subset(node)
        if expr is None:
            return False
        count = session.scalar(
            sa.text(
                "SELECT count(*) FROM (SELECT rowid FROM search_fts_words "
                "WHERE search_fts_words MATCH :subset LIMIT :n)"
            ),
            {"subset": expr, "n": n},
        )
        return (count or 0) >= n

    def _word_subset(self, node: Node) -> str | None:
        """An FTS5 expression on the word index matching a subset of ``node``'s matches and
        using it for at least one substring term, else None."""
        if isinstance(node, Term):
            text = node.text
            if node.short or node.kind == "fuzzy":
                return None
            cjk = [is_cjk(ch) for ch in text]
            if any(cjk) and not all(cjk):  # 京a12345: a space may part them in the index
                return None
            if not all(cjk) and not all(ch.isalnum() or ch == " " for ch in text):
                return None
            # the last word whole, not as a prefix: fewer rows, still a subset, and FTS5
            # need not merge the doclists of every word that starts with it
            return '"' + tokens(text) + '"'
        if isinstance(node, And) and node.negated:
            return None
        parts: list[str] = []
        for item in node.items:
            sub = self._word_subset(item)
            if sub is None:
                if not (isinstance(item, Term) and item.short and item.kind != "fuzzy"):
                    return None
                sub = self._match(item)[1]
            parts.append(f"({sub})")
        if not any(isinstance(i, Term) and not i.short for i in node.items) and all(
            isinstance(i, Term) for i in node.items
        ):
            return None  # words only: the exact count is as cheap
        return "(" + (" OR " if isinstance(node, Or) else " AND ").join(parts) + ")"

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
        (BitmapAnd/BitmapOr) instead of materialising INTERSECT/EXCEPT of id sets.

        A tree of word-index terms only becomes one tsquery (``&``, ``|``, ``!``), given as
        an InitPlan: the planner multiplies the selectivities of ``@@`` conditions (司机 AND
        迟到: 70 rows estimated, 44 000 found), then thinks the id window not worth a
        BitmapAnd and visits every match's heap page; for a value it cannot see it assumes
        0.5 % and narrows the scan to the window (0.42 s -> see benchmarks/README.md)."""
        combined = self._one_tsquery(node) if not isinstance(node, Term) else None
        if combined is not None:
            return (
                sa.text(
                    "SELECT segment_id AS sid FROM search_segments WHERE search_fts_tsv @@ "
                    "(SELECT to_tsquery('simple'::regconfig, :tree))"
                )
                .bindparams(sa.bindparam("tree", combined))
                .columns(sa.column("sid", sa.Integer))
            )
        params: list[sa.BindParameter[str]] = []
        where = self._tree_where(node, params)
        if where is None:
            return None
        return (
            sa.text(f"SELECT segment_id AS sid FROM search_segments WHERE {where}")
            .bindparams(*params)
            .columns(sa.column("sid", sa.Integer))
        )

    def _one_tsquery(self, node: Node) -> str | None:
        """The tree as one tsquery text when every term is a word-index term, else None."""
        if isinstance(node, Term):
            if not node.short:
                return None
            toks, prefix = _word_phrase(node)
            return f"({_tsquery(toks, prefix)})"
        parts = [self._one_tsquery(i) for i in node.items]
        negated = [self._one_tsquery(i) for i in node.negated] if isinstance(node, And) else []
        if any(p is None for p in [*parts, *negated]):
            return None
        expr = "(" + (" | " if isinstance(node, Or) else " & ").join(p for p in parts if p) + ")"
        for p in negated:
            expr = f"({expr} & !{p})"
        return expr

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

    def fuzzy_candidates(
        self, session: Session, text: str, limit: int, *, ranked: bool = False
    ) -> list[tuple[int, str]]:
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

    def newest(
        self, session: Session, matching: Any, limit: int, keep: int
    ) -> tuple[int, int, int, Any]:
        """Progressive newest windows: look at the newest ids first (``segment_id > X`` lets
        the planner BitmapAnd the primary key range with the GIN scan, so only heap pages in
        the window are visited and rechecked — GIN keeps no positions, and 4 % of 1 M rows
        sit on nearly every heap page), then widen the window below it to where the density
        seen so far says the rest will be, until ``limit`` ids are found or the index is
        exhausted. A query with no match in the first window (a plate) is asked once more
        over everything: its GIN scan is cheap. The ids to keep come back as a list, so
        ranking them does not scan the GIN index again."""
        lowest, highest = session.execute(
            sa.text("SELECT min(segment_id), max(segment_id) FROM search_segments")
        ).one()
        if highest is None:
            return 0, 0, 0, []
        sid = matching.c.sid
        count, smallest, largest = 0, 0, 0
        kept: list[int] = []
        top, span = int(highest), max(limit * 2, 1_000)  # first guess: half the rows match
        while True:
            bottom = top - span
            found, low, high, ids = _newest(
                session, sid, bottom if bottom >= lowest else None, top, limit - count,
                max(0, keep - len(kept)),
            )  # fmt: skip
            if found:
                count, smallest, largest = count + found, low, largest or high
                kept.extend(ids)
            if count >= limit or bottom < lowest:
                return count, smallest, largest, kept
            seen = int(highest) - bottom
            if count:  # the rows still to read at the density seen so far, + 25 %
                span = max(span, int(seen * (limit / count - 1) * 1.25))
            else:
                span = bottom - int(lowest) + 1
            top = bottom

    def at_least(self, session: Session, node: Node, n: int) -> bool:
        return False

    def newest_of(
        self, session: Session, node: Node, matching: Any, limit: int, keep: int
    ) -> tuple[int, int, int, list[int]] | None:
        """The word index's newest matches from ``search_fts_postings`` (migration 0021),
        read newest block first through its primary key: no GIN posting list read whole, no
        heap page visited. Exact for trees of one-character terms, two-character Chinese
        terms (their bigram key) and word prefixes of at most :data:`PREFIX_LEXEMES`
        lexemes; a single substring term see :meth:`_newest_substring`. Trees mixing
        substring and word terms are left to :meth:`newest`."""
        if isinstance(node, Term) and not node.short and node.kind != "fuzzy":
            return self._newest_substring(session, node, matching, limit, keep)
        leaves = _postings_keys(session, node)
        if leaves is None:
            return None
        return Postings(session, leaves).newest(node, limit, keep)

    def _newest_substring(
        self, session: Session, term: Term, matching: Any, limit: int, keep: int
    ) -> tuple[int, int, int, list[int]] | None:
        """A substring term. Its words in a row (from the position masks; a single word:
        its postings) are a subset of its matches, whenever the folded text puts the same
        separators between those words in every segment: one space between words, none
        between CJK characters — not so where CJK meets a letter or digit. When that
        subset alone reaches ``limit`` the total is proven without reading one segment, and
        only the ``keep`` newest matches are looked for (smallest and largest are then 0:
        the caller needs them only up to the cap). Else, and for those newest, candidates
        come from the keys every match must hold (call *you* back*), newest first, checked
        with ``LIKE`` in one statement per window, given up (None) when they stop paying;
        a term without such keys (``the`` may sit inside any word) falls to
        :meth:`newest`'s windows."""
        words = tokens(term.text).split()
        lexemes = _lexemes(session, sorted(set(words))) if words else {}
        needs = _substring_needs(session, term.text, lexemes)
        pattern = "%" + _like_escape(term.text) + "%"
        cjk = [_cjk(w) for w in words]
        if words and (all(cjk) or not any(cjk)) and all(lexemes.get(w) == [w] for w in words):
            keys: list[_Key] = [(1, w) for w in words]
            phrase = Postings(
                session, {term: [[k] for k in set(keys)]}, phrase=keys if len(keys) > 1 else None
            ).newest(term, limit, 0)
            if phrase is not None and phrase[0] >= limit:
                checked = Postings(session, {term: needs}, recheck=pattern, budget=3 * keep)
                kept = checked.newest(term, keep, keep) if needs else None
                if kept is None:  # no keys, or they say too little: the GIN windows
                    return limit, 0, 0, list(self.newest(session, matching, keep, keep)[3])
                return limit, 0, 0, kept[3]
        if not needs:
            return None
        postings = Postings(session, {term: needs}, recheck=pattern, budget=3 * limit)
        return postings.newest(term, limit, keep)

    def begin(self, session: Session) -> None:
        """Plan every statement for its own values: psycopg prepares a statement after five
        runs and PostgreSQL then may switch to a generic plan, which cannot know whether the
        bound tsquery or LIKE pattern is a plate (10 rows: GIN) or 您 (300 000: windows) —
        seen at 0.85 s instead of 0.24 s for 迟到 at 1 M segments. Transaction-local."""
        session.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))

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


def _newest(
    session: Session, sid: Any, above: int | None, upto: int | None, limit: int, keep: int
) -> tuple[int, int, int, list[int]]:
    """(count, min, max) of the ``limit`` largest ids ``sid`` in (above, upto], and the
    ``keep`` largest of them (PostgreSQL only: an array aggregate)."""
    query = sa.select(sid)
    if above is not None:
        query = query.where(sid > above)
    if upto is not None:
        query = query.where(sid <= upto)
    columns: list[Any] = [sid]
    if keep:
        columns.append(sa.func.row_number().over(order_by=sid.desc()).label("rank"))
    newest = query.with_only_columns(*columns).order_by(sid.desc()).limit(limit).subquery()
    aggregates: list[Any] = [
        sa.func.count(), sa.func.min(newest.c.sid), sa.func.max(newest.c.sid)
    ]  # fmt: skip
    if keep:
        aggregates.append(sa.func.array_agg(newest.c.sid).filter(newest.c.rank <= keep))
    row = session.execute(sa.select(*aggregates)).one()
    ids = [int(i) for i in row[3] or []] if keep else []
    return int(row[0]), int(row[1] or 0), int(row[2] or 0), ids


# Segment ids per row of search_fts_postings: 2**12 (migration 0021's ``>> 12`` and ``& 4095``).
BLOCK_BITS = 12
# A word prefix (ok*) served from the postings expands to at most this many lexemes.
PREFIX_LEXEMES = 64

_Key = tuple[int, str]  # (gram, lexeme): 1 a lexeme, 2 "a b" adjacent one-character lexemes
# What a term asks of a segment's keys: each inner list is alternatives (any one will do),
# every list must be met.
_Needs = list[list[_Key]]


def _lexemes(session: Session, words: list[str]) -> dict[str, list[str]]:
    """What PostgreSQL's ``simple`` configuration makes of each word: the postings key a
    word stands for only when it is its one and only lexeme."""
    rows = session.execute(
        sa.text(
            "SELECT w, ARRAY(SELECT lexeme FROM unnest(to_tsvector('simple'::regconfig, w))) "
            "FROM unnest(CAST(:words AS text[])) AS w"
        ),
        {"words": words},
    )
    return {str(r[0]): list(r[1]) for r in rows}


def _prefixed(session: Session, word: str) -> list[_Key] | None:
    """The lexemes starting with ``word`` (the collation is "C": a range of the key), or
    None when there are more than :data:`PREFIX_LEXEMES`."""
    found = list(
        session.scalars(
            sa.text(
                "SELECT DISTINCT lexeme FROM search_fts_postings WHERE gram = 1 "
                "AND lexeme >= :low AND lexeme < :high ORDER BY lexeme LIMIT :n"
            ),
            {"low": word, "high": word[:-1] + chr(ord(word[-1]) + 1), "n": PREFIX_LEXEMES + 1},
        )
    )
    return None if len(found) > PREFIX_LEXEMES else [(1, str(lexeme)) for lexeme in found]


def _postings_keys(session: Session, node: Node) -> dict[Term, _Needs] | None:
    """The postings keys that are exactly each term's matches, or None when some term of
    the tree has none (a substring, fuzzy or mixed-script term, a too-wide prefix)."""
    terms: list[Term] = []

    def collect(n: Node) -> bool:
        if isinstance(n, Term):
            terms.append(n)
            return n.short and n.kind != "fuzzy"
        kids = [*n.items, *(n.negated if isinstance(n, And) else ())]
        return all(collect(k) for k in kids)

    if not collect(node):
        return None
    phrases = {t: _word_phrase(t) for t in terms}
    words = sorted({w for toks, _ in phrases.values() for w in toks})
    lexemes = _lexemes(session, words)
    if any(lexemes.get(w) != [w] for w in words):
        return None
    keys: dict[Term, _Needs] = {}
    for term, (toks, prefix) in phrases.items():
        if len(toks) == 2 and not prefix and all(len(t) == 1 for t in toks):
            keys[term] = [[(2, " ".join(toks))]]
        elif len(toks) == 1 and not prefix:
            keys[term] = [[(1, toks[0])]]
        elif len(toks) == 1 and (found := _prefixed(session, toks[0])) is not None:
            keys[term] = [found]
        else:
            return None
    return keys


def _cjk(token: str) -> bool:
    return len(token) == 1 and is_cjk(token)


def _substring_needs(session: Session, text: str, lexemes: dict[str, list[str]]) -> _Needs:
    """Keys every segment containing the substring ``text`` holds (a superset of its
    matches, to be checked with ``LIKE``). The word index splits the folded text into CJK
    characters and maximal alphanumeric runs, so inside the substring: a CJK character is a
    lexeme, two adjacent ones a bigram; a run with a character on both sides is a whole
    lexeme; a run ending the substring starts a lexeme (a prefix); a run starting it may
    be the end of a longer word and says nothing. Keys PostgreSQL would parse differently,
    or too wide a prefix, are left out: fewer keys only widen the superset. ``lexemes``:
    what :func:`_lexemes` made of the text's words."""
    runs: list[tuple[str, int, int]] = []  # (token, start, end), split as tokens() splits
    begun: int | None = None
    for k, ch in enumerate(text):
        cjk = is_cjk(ch)
        if cjk or not ch.isalnum():
            if begun is not None:
                runs.append((text[begun:k], begun, k))
                begun = None
            if cjk:
                runs.append((ch, k, k + 1))
        elif begun is None:
            begun = k
    if begun is not None:
        runs.append((text[begun:], begun, len(text)))
    needs: _Needs = []
    wanted: list[tuple[str, str]] = []  # (kind, word): "exact", "prefix", "pair"
    for i, (word, start, end) in enumerate(runs):
        if _cjk(word):
            after = runs[i + 1] if i + 1 < len(runs) else None
            if after and _cjk(after[0]) and after[1] == end:
                wanted.append(("pair", word + " " + after[0]))
            elif not (i and _cjk(runs[i - 1][0]) and runs[i - 1][2] == start):
                wanted.append(("exact", word))  # a CJK character with no neighbour in a pair
        elif start > 0 and end < len(text):
            wanted.append(("exact", word))
        elif start > 0:
            wanted.append(("prefix", word))
    for kind, word in wanted:
        if any(lexemes.get(w) != [w] for w in word.split(" ")):
            continue
        if kind == "prefix":
            found = _prefixed(session, word)
            if found is not None:
                needs.append(found)
        else:
            needs.append([(2 if kind == "pair" else 1, word)])
    return needs


_Rows = dict[tuple[_Key, int], tuple[list[int], list[int] | None]]
# Bit 63 of a mask: the lexeme also holds a position beyond 63, where adjacency is unknown.
_BEYOND = 1 << 63


def adjacent(masks: list[Any]) -> Any:
    """For each segment, whether the words whose position masks these are (one array per
    word, aligned by segment; PostgreSQL's signed bigints) stand in a row somewhere: word k
    at position p + k. A mask with a position beyond 63 proves nothing (False). One numpy
    pass per word: per segment in Python it was most of a phrase search's time."""
    run: Any = None
    known: Any = None
    for k, signed in enumerate(masks):
        mask = np.asarray(signed, dtype=np.int64).view(np.uint64)
        inside = (mask & np.uint64(_BEYOND)) == 0
        shifted = mask >> np.uint64(k)
        run = shifted if run is None else run & shifted
        known = inside if known is None else known & inside
    return known & (run != 0)


class Postings:
    """The newest matches of a query tree from ``search_fts_postings``, one window of
    blocks at a time, newest first; each block's offsets combined in Python (sets), as the
    tsquery would combine the terms row by row. With ``phrase`` (a word key per position)
    the term's segments must also hold those words in a row (from the position masks).
    With ``recheck`` (a ``LIKE`` pattern) the keys give candidates and the pattern decides,
    segment by segment, newest first; when the candidates stop paying (more than
    ``budget`` read, or fewer than one in three matching), :meth:`newest` gives up."""

    def __init__(
        self, session: Session, keys: dict[Term, _Needs], *, recheck: str | None = None,
        budget: int = 0, phrase: list[_Key] | None = None,
    ) -> None:  # fmt: skip
        self.session = session
        self.keys = keys
        self.recheck = recheck
        self.budget = budget
        self.phrase = phrase
        every = sorted({k for needs in keys.values() for alts in needs for k in alts})
        self.grams = [g for g, _ in every]
        self.lexemes = [lexeme for _, lexeme in every]

    def _window(self, low: int, high: int) -> _Rows:
        if not self.grams:
            return {}
        masks = "p.masks" if self.phrase else "NULL::bigint[]"
        rows = self.session.execute(
            sa.text(
                f"SELECT p.gram, p.lexeme, p.block, p.ids, {masks} "
                "FROM unnest(CAST(:grams AS smallint[]), CAST(:lexemes AS text[])) "
                "AS k (gram, lexeme) JOIN search_fts_postings AS p "
                "ON p.gram = k.gram AND p.lexeme = k.lexeme AND p.block BETWEEN :low AND :high"
            ),
            {"grams": self.grams, "lexemes": self.lexemes, "low": low, "high": high},
        )
        return {((int(r[0]), str(r[1])), int(r[2])): (r[3], r[4]) for r in rows}

    def _offsets(self, node: Node, block: int, rows: _Rows) -> set[int]:
        if isinstance(node, Term):
            out: set[int] | None = None
            for alternatives in self.keys[node]:
                found: set[int] = set()
                for key in alternatives:
                    found.update(rows.get((key, block), ((), None))[0])
                out = found if out is None else out & found
            if out and self.phrase:
                out = self._in_a_row(out, block, rows)
            return out or set()
        parts = [self._offsets(item, block, rows) for item in node.items]
        if isinstance(node, Or):
            return set().union(*parts)
        out = set.intersection(*parts) if parts else set()
        for item in node.negated:
            if out:
                out -= self._offsets(item, block, rows)
        return out

    def _in_a_row(self, offsets: set[int], block: int, rows: _Rows) -> set[int]:
        """The offsets whose segments hold the phrase's words in a row (:func:`adjacent`)."""
        assert self.phrase is not None
        candidates = np.fromiter(sorted(offsets), dtype=np.int64, count=len(offsets))
        masks = []
        for key in self.phrase:
            ids, bits = rows[(key, block)]  # every candidate holds every word
            where = np.searchsorted(np.asarray(ids, dtype=np.int64), candidates)
            masks.append(np.asarray(bits, dtype=np.int64)[where])
        return set(candidates[adjacent(masks)].tolist())

    def _checked(self, ids: list[int]) -> list[int]:
        """The candidates (newest first) whose text holds the substring, newest first."""
        if not ids:
            return []
        kept = set(
            self.session.scalar(
                sa.text(
                    "SELECT array_agg(segment_id) FROM search_segments WHERE segment_id = "
                    "ANY(CAST(:ids AS integer[])) AND norm LIKE :pattern ESCAPE '\\'"
                ),
                {"ids": ids, "pattern": self.recheck},
            )
            or ()
        )  # one array, not a row per match: fetching 1 000 rows cost 5 ms
        return [i for i in ids if i in kept]

    def newest(self, node: Node, limit: int, keep: int) -> tuple[int, int, int, list[int]] | None:
        lowest, highest = self.session.execute(
            sa.text("SELECT min(segment_id), max(segment_id) FROM search_segments")
        ).one()
        if highest is None or limit <= 0:
            return 0, 0, 0, []
        first, top = int(lowest) >> BLOCK_BITS, int(highest) >> BLOCK_BITS
        found: list[int] = []
        read = 0  # candidates looked at (with a recheck)
        span = 16  # 64 k ids: the newest 10 001 of a word in a quarter of the segments
        while top >= first:
            bottom = max(first, top - span + 1)
            rows = self._window(bottom, top)
            window: list[int] = []
            last = bottom  # the oldest block looked at: enough candidates may come sooner
            for block in range(top, bottom - 1, -1):
                base = block << BLOCK_BITS
                offsets = sorted(self._offsets(node, block, rows), reverse=True)
                window.extend(base + o for o in offsets)
                if len(found) + len(window) >= limit:
                    last = block
                    break
            if self.recheck is not None:
                read += len(window)
                window = self._checked(window)
            found.extend(window)
            if len(found) >= limit:
                found = found[:limit]
                return len(found), found[-1], found[0], found[:keep]
            if self.recheck is not None and (
                read > self.budget or (read >= 2_000 and 3 * len(found) < read)
            ):
                return None  # the keys say little about this substring: GIN's windows
            if found:  # the blocks still to read at the density seen so far, + 25 %
                blocks = (int(highest) >> BLOCK_BITS) - last + 1
                span = max(span, int(blocks * (limit - len(found)) / len(found) * 1.25) + 1)
            else:
                span *= 8
            top = last - 1
        if not found:
            return 0, 0, 0, []
        return len(found), found[-1], found[0], found[:keep]


def backend_for(session: Session) -> SearchBackend:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return SqliteFts5()
    if dialect == "postgresql":
        return PostgresTrgm()
    raise NotImplementedError(f"no search backend for {dialect}")
