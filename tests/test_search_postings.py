"""PostgreSQL's newest-first postings (migration 0021) hold exactly what the word index holds.

``search_fts_postings`` is derived from ``search_fts_tsv`` by triggers; the search reads it
instead of the GIN index for one- and two-character terms. These tests prove, on a generated
corpus: every key's segments are exactly those the tsquery it stands for matches (a lexeme,
or the phrase ``'a' <-> 'b'``); the table stays equal to a rebuild from scratch after
inserts, deletes, updates, re-indexing and truncation; and the newest matches read from it
are what sorting every match gives.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from benchmarks.datagen import generate_segments, index_segments
from earwitness.models import SearchSegment
from earwitness.runtime import Runtime
from earwitness.search import SearchOptions, backends, search
from earwitness.search.backends import Postings, adjacent, backend_for
from earwitness.search.indexer import index_recording, reindex_all
from earwitness.search.query import Node, Term, parse_query
from tests.conftest import _postgres_schema

# What the triggers should have produced, computed from scratch by the same definition.
_REBUILT = """
    SELECT g.gram, g.lexeme, s.segment_id >> 12 AS block,
           array_agg((s.segment_id & 4095)::smallint ORDER BY s.segment_id) AS ids,
           CASE WHEN g.gram = 1 THEN array_agg(g.mask ORDER BY s.segment_id) END AS masks
    FROM search_segments AS s, search_fts_grams(s.search_fts_tsv) AS g
    GROUP BY 1, 2, 3
"""


@pytest.fixture
def db_url() -> Iterator[str]:
    """PostgreSQL only (this module's tests): SQLite's FTS5 reads its doclists newest first
    and needs no such table."""
    yield from _postgres_schema()


@pytest.fixture
def corpus(runtime: Runtime) -> Runtime:
    with runtime.db.session() as session:
        generate_segments(session, 1_500, seed=29)
        index_segments(session)
        session.commit()
    return runtime


def _differences(rt: Runtime) -> list[tuple[object, ...]]:
    with rt.db.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    f"(SELECT gram, lexeme, block, ids, masks FROM search_fts_postings EXCEPT "
                    f"SELECT * FROM ({_REBUILT}) AS a) UNION ALL "
                    f"(SELECT * FROM ({_REBUILT}) AS b EXCEPT "
                    f"SELECT gram, lexeme, block, ids, masks FROM search_fts_postings)"
                )
            )
        ]


def _segments_of(conn: sa.Connection, gram: int, lexeme: str) -> set[int]:
    rows = conn.execute(
        sa.text(
            "SELECT (block << 12) + o FROM search_fts_postings, unnest(ids) AS o "
            "WHERE gram = :g AND lexeme = :l"
        ),
        {"g": gram, "l": lexeme},
    )
    return {int(r[0]) for r in rows}


def test_every_key_holds_exactly_what_its_tsquery_matches(corpus: Runtime) -> None:
    with corpus.db.engine.connect() as conn:
        keys = conn.execute(
            sa.text("SELECT DISTINCT gram, lexeme FROM search_fts_postings ORDER BY 1, 2")
        ).all()
        grams = {g for g, _ in keys}
        assert grams == {1, 2}, grams  # lexemes and two-character phrases both present
        # every bigram and a spread of lexemes (all of them take a minute on this corpus)
        unigrams = [k for k in keys if k[0] == 1]
        checked = [k for k in keys if k[0] == 2] + unigrams[:: max(1, len(unigrams) // 150)]
        for gram, lexeme in checked:
            words = lexeme.split(" ")
            query = " <-> ".join("'" + w.replace("'", "''") + "'" for w in words)
            expected = {
                int(r[0])
                for r in conn.execute(
                    sa.text(
                        "SELECT segment_id FROM search_segments WHERE search_fts_tsv @@ "
                        "to_tsquery('simple'::regconfig, :q)"
                    ),
                    {"q": query},
                )
            }
            assert _segments_of(conn, gram, lexeme) == expected, (gram, lexeme)
        assert len(checked) > 200


@pytest.mark.parametrize(
    "words",
    [["call", "you", "back"], ["the", "driver"], ["thank", "you"], ["司", "机", "迟", "到"],
     ["您", "好"], ["you", "call"]],
)  # fmt: skip
def test_words_in_a_row_are_the_tsquery_phrase(corpus: Runtime, words: list[str]) -> None:
    """The position masks decide a phrase of words as ``<->`` does (a segment whose words
    sit beyond position 63 is left out: a subset, never a wrong member)."""
    with corpus.db.session() as session:
        expected = sorted(
            session.scalars(
                sa.text(
                    "SELECT segment_id FROM search_segments WHERE search_fts_tsv @@ "
                    "to_tsquery('simple'::regconfig, :q)"
                ),
                {"q": " <-> ".join(words)},
            ),
            reverse=True,
        )
        term = Term(" ".join(words))
        keys = [(1, w) for w in words]
        got = Postings(session, {term: [[k] for k in set(keys)]}, phrase=keys).newest(
            term, 10_000, 10_000
        )
        assert got is not None
        assert got[3] == expected, words
    if words == ["you", "call"]:
        assert expected == []  # the order matters
    else:
        assert expected


def test_adjacency_of_position_masks() -> None:
    def at(*positions: int) -> int:
        return sum(1 << (p - 1) for p in positions)

    def in_a_row(masks: list[int]) -> bool:  # one segment: one mask per word
        return bool(adjacent([[m] for m in masks])[0])

    assert in_a_row([at(3), at(4), at(5)])
    assert in_a_row([at(6, 9), at(7, 10), at(8)])
    assert not in_a_row([at(1, 9), at(2, 7), at(8)])  # each pair somewhere, never all three
    assert not in_a_row([at(4), at(3)])  # order matters
    assert not in_a_row([at(63), at(1)])
    # bit 63 (PostgreSQL's signed bigint goes negative): a position beyond 63 is unknown, so
    # even words otherwise in a row are no proof
    assert not in_a_row([at(3) - (1 << 63), at(4)])
    assert not in_a_row([at(2) - (1 << 63), at(3)])
    # several segments at once, each decided on its own
    assert adjacent([[at(3), at(4)], [at(4), at(6)]]).tolist() == [True, False]


def test_the_table_follows_every_change_to_the_index(corpus: Runtime) -> None:
    assert _differences(corpus) == []
    with corpus.db.session() as session:
        rids = list(session.scalars(sa.select(SearchSegment.recording_id).distinct().limit(5)))
        # re-indexing a recording deletes and inserts its rows
        index_recording(session, rids[0])
        # a deletion on its own
        session.execute(sa.delete(SearchSegment).where(SearchSegment.recording_id == rids[1]))
        # an update that changes the words of some rows (and of their neighbours' blocks)
        session.execute(
            sa.update(SearchSegment)
            .where(SearchSegment.recording_id.in_(rids[2:4]))
            .values(tokens="鑫 犇 迟 到 words here", norm="鑫犇迟到 words here")
        )
        session.commit()
        updated = set(
            session.scalars(
                sa.select(SearchSegment.segment_id).where(SearchSegment.recording_id.in_(rids[2:4]))
            )
        )
    assert _differences(corpus) == []
    with corpus.db.engine.connect() as conn:
        assert updated and _segments_of(conn, 2, "鑫 犇") == updated
    report = reindex_all(corpus.db)
    assert report.segments > 0
    assert _differences(corpus) == []
    with corpus.db.session() as session:
        session.execute(sa.text("TRUNCATE search_segments"))
        session.commit()
    with corpus.db.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM search_fts_postings")) == 0


@pytest.mark.parametrize(
    "q", ["您", "京", "迟到", "司机迟到", "投诉 -退款", "(京 OR 迟到) -您", "ok*", "ca*", "您 zq"]
)
def test_newest_matches_from_the_postings_are_the_sorted_matches(corpus: Runtime, q: str) -> None:
    with corpus.db.session() as session:
        every = sorted(
            (
                h.segment_id
                for h in search(
                    session, q, options=SearchOptions(count_cap=None, limit=10_000)
                ).hits
            ),
            reverse=True,
        )
        backend = backend_for(session)
        node = parse_query(q)
        tree = backend.tree_ids(node)
        assert tree is not None
        matching = sa.select(tree.subquery("ids").c.sid).subquery("matching")
        for n in (1, 9, 300, len(every), len(every) + 1):
            top = every[:n]
            expected = (len(top), top[-1], top[0]) if top else (0, 0, 0)
            got = backend.newest_of(session, node, matching, n, min(n, 30))
            assert got is not None, q  # served from the postings, not the GIN index
            assert got[:3] == expected, (q, n)
            assert got[3] == top[:30], (q, n)


def test_what_the_postings_cannot_serve_falls_back(
    corpus: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A word inside words, fuzzy and mixed-script terms are not in the postings; a prefix
    wider than PREFIX_LEXEMES lexemes is left to the GIN index; a long single word is
    served only when the segments holding it as a word prove the cap."""
    with corpus.db.session() as session:
        backend = backend_for(session)
        matching = sa.select(sa.literal(1).label("sid")).subquery()
        for q in ["efund", "京a~", "京a", "refund OR 京"]:
            assert backend.newest_of(session, parse_query(q), matching, 10, 5) is None, q
        wide = session.scalar(
            sa.text(
                "SELECT count(DISTINCT lexeme) FROM search_fts_postings "
                "WHERE gram = 1 AND lexeme LIKE 'th%'"
            )
        )
        assert wide >= 3  # the, thank, third, this
        assert backend.newest_of(session, parse_query("th*"), matching, 10, 5) is not None
        monkeypatch.setattr(backends, "PREFIX_LEXEMES", wide - 1)
        assert backend.newest_of(session, parse_query("th*"), matching, 10, 5) is None
        # "the": fewer word matches than the limit asked for is no proof
        words = session.scalar(
            sa.text(
                "SELECT sum(cardinality(ids)) FROM search_fts_postings "
                "WHERE gram = 1 AND lexeme = 'the'"
            )
        )
        assert words and words > 10
        assert backend.newest_of(session, parse_query("the"), matching, words + 1, 5) is None
        proven = backend.newest_of(session, parse_query("the"), _matching(backend, "the"), words, 5)
        assert proven is not None and proven[0] == words
        every = sorted(
            (h.segment_id for h in search(session, "the", options=SearchOptions(
                count_cap=None, limit=10_000)).hits),
            reverse=True,
        )  # fmt: skip
        assert proven[3] == every[:5]


def _matching(backend: object, q: str | Node) -> sa.Subquery:
    tree = backend.tree_ids(parse_query(q) if isinstance(q, str) else q)  # type: ignore[attr-defined]
    return sa.select(tree.subquery("ids").c.sid).subquery("matching")


def test_substrings_are_found_from_their_keys_and_checked(corpus: Runtime) -> None:
    """Any substring of the indexed text — across words, inside words, Chinese, mixed — is
    served from the keys every match must hold and checked with LIKE: the newest matches
    are exactly those of a LIKE over every row, newest first."""
    rng = random.Random(5)
    with corpus.db.session() as session:
        backend = backend_for(session)
        norms = list(session.scalars(sa.select(SearchSegment.norm).order_by(SearchSegment.norm)))
        served = 0
        for _ in range(60):
            text = rng.choice(norms)
            start = rng.randrange(max(1, len(text) - 3))
            needle = text[start : start + rng.randint(3, 14)].strip()
            if len(needle) < 3:
                continue
            every = list(
                session.scalars(
                    sa.select(SearchSegment.segment_id)
                    .where(SearchSegment.norm.contains(needle, autoescape=True))
                    .order_by(SearchSegment.segment_id.desc())
                )
            )
            node = parse_query('"' + needle.replace('"', " ") + '"')
            if not isinstance(node, Term) or node.text != needle:
                continue  # the query language reads it otherwise (quotes, operators)
            for n in (1, 25, len(every) + 1):
                got = backend.newest_of(session, node, _matching(backend, node), n, min(n, 10))
                if got is None:
                    continue  # keys too unselective: GIN's windows answer (tested elsewhere)
                served += 1
                top = every[:n]
                assert got[3] == top[:10], needle
                if got[1:3] == (0, 0) and top:  # a single word, proven from its word postings
                    assert got[0] == n == len(top), needle
                    continue
                assert got[:3] == ((len(top), top[-1], top[0]) if top else (0, 0, 0)), needle
        assert served > 60  # most substrings are served from the postings
