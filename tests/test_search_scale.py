"""Search at call-centre scale (issue 17): the fast path gives the old path's answers.

A fixed generated corpus (benchmarks/datagen, 3 000 segments) is searched with every query
class — plates, order numbers, one- and two-character Chinese, very common words, phrases,
fuzzy, boolean — through the new path (unscored count and id window first, FTS5 merging
AND/OR/NOT itself, scoring only the ids that can match) and through the reference path
(``count_cap=None``: score and count every match, as before issue 17). Below the cap they
must agree field by field; above it, the total is the cap (shown "N+") and the page ranks
only the newest ``rank_window`` matches by a score computed from their text (the deliberate
change, recomputed here in Python from the reference path's matches).
"""

from __future__ import annotations

import re
from dataclasses import asdict, replace

import pytest
import sqlalchemy as sa

from benchmarks.datagen import generate_segments, index_segments
from earwitness.models import Call, Segment
from earwitness.runtime import Runtime
from earwitness.search import SearchFilter, SearchHit, SearchOptions, SearchResult, search
from earwitness.search import service as search_service
from earwitness.search.backends import backend_for
from earwitness.search.normalize import fold
from earwitness.search.query import parse_query, positive_terms
from earwitness.search.service import window_score
from tests.accounts_helpers import api_client

SEGMENTS = 3_000
# Plates and order numbers are taken from the generated text (see ``_known``).
QUERIES = [
    "{plate}",  # plate (trigram)
    "{plate_prefix}*",  # plate prefix
    "{order}",  # order number
    "京",  # one Chinese character
    "迟到",  # two characters
    "您",  # very common (a third of the segments)
    "the",  # very common English word
    '"call you back"',  # phrase
    "{plate_typo}~",  # fuzzy plate: one digit heard wrong
    "司机迟到",  # jieba split: AND of words + whole-run boost
    "投诉 -退款",  # NOT
    "(京 OR 迟到) -您",  # grouping, all in the word index
    "refund OR {plate}",  # mixed word/trigram tree
    "您 zzqqzz",  # a common word AND nothing: no hits at all
]


def _known(rt: Runtime) -> dict[str, str]:
    """A plate and an order number that occur in the generated corpus."""
    with rt.db.session() as session:
        texts = session.scalars(sa.select(Segment.text).order_by(Segment.id)).all()
    plate = next(m.group(0) for t in texts if (m := re.search(r"[京]([A-K]\d{5})", t)))
    order = next(m.group(0) for t in texts if (m := re.search(r"\d{10}", t)))
    typo = plate[:-1] + str((int(plate[-1]) + 1) % 10)
    return {"plate": plate, "plate_prefix": plate[:-2], "order": order, "plate_typo": typo}


@pytest.fixture
def generated(runtime: Runtime) -> Runtime:
    with runtime.db.session() as session:
        generate_segments(session, SEGMENTS, seed=17)
        index_segments(session)
        session.commit()
    return runtime


def run(
    rt: Runtime, q: str, filters: SearchFilter | None = None, **options: object
) -> SearchResult:
    with rt.db.session() as session:
        return search(session, q, filters, SearchOptions(**options))  # type: ignore[arg-type]


@pytest.mark.parametrize("q", QUERIES)
def test_below_the_cap_the_fast_path_answers_exactly_as_before(generated: Runtime, q: str) -> None:
    q = q.format(**_known(generated))
    for opts in (
        {"sort": "relevance"},
        {"sort": "newest", "limit": 7, "offset": 3},
        {"sort": "oldest", "group_by_call": True},
    ):
        new = run(generated, q, **opts)
        old = run(generated, q, count_cap=None, **opts)
        assert new.total_exact and old.total_exact
        assert asdict(new) == asdict(old), (q, opts)
    hits = run(generated, q, count_cap=None, limit=5000)
    if q not in ("您 zzqqzz",):
        assert hits.total > 0, q  # the corpus has every class, so equality above means something
    assert hits.total == len(hits.hits)


ABOVE_THE_CAP = [
    ("您", SearchFilter()),
    ("the", SearchFilter()),
    ('"call you back"', SearchFilter()),
    ("(京 OR 迟到) -您", SearchFilter()),
    ("您 OR call", SearchFilter()),
    ('司机迟到 OR "call you back"', SearchFilter()),
    ("您", SearchFilter(role="agent")),
    ("您 OR 迟到", SearchFilter(outcome="answered", queue="complaints")),
]


def test_above_the_cap_the_page_ranks_the_newest_window(generated: Runtime) -> None:
    """Above the cap: total = cap, not exact; the page ranks the newest ``rank_window``
    matches (by segment id) of the reference's match set, by ``window_score`` recomputed
    here from each hit's text, ties by call time (newest first) then id. (One corpus for
    every query: generating it is most of the time.)"""
    for q, filters in ABOVE_THE_CAP:
        _check_newest_window(generated, q, filters)


def _check_newest_window(generated: Runtime, q: str, filters: SearchFilter) -> None:
    cap, window = 40, 12
    reference = run(generated, q, filters, count_cap=None, limit=10_000)
    assert reference.total > cap * 2, q
    newest = sorted(reference.hits, key=lambda h: h.segment_id, reverse=True)[:window]
    terms = positive_terms(parse_query(q))

    def score(hit: SearchHit) -> float:
        return window_score(fold(hit.text).text, terms, {})

    by_relevance = sorted(newest, key=lambda h: (-score(h), -h.at.timestamp(), h.segment_id))
    by_time = sorted(newest, key=lambda h: (-h.at.timestamp(), -score(h), h.segment_id))
    for sort, expected in (("relevance", by_relevance), ("newest", by_time)):
        got = run(
            generated, q, filters, count_cap=cap, rank_window=window, limit=5, offset=3,
            sort=sort,
        )  # fmt: skip
        assert (got.total, got.total_exact) == (cap, False), q
        assert [h.segment_id for h in got.hits] == [h.segment_id for h in expected[3:8]], (q, sort)
        for hit, ref in zip(got.hits, expected[3:8], strict=True):
            assert hit.score == round(score(ref), 6), q
            assert asdict(hit) == asdict(ref) | {"score": hit.score}
    # a page beyond the window widens it: the newest offset + limit matches are ranked
    deep = run(generated, q, filters, count_cap=cap, rank_window=window, limit=10, offset=20)
    reach = sorted(reference.hits, key=lambda h: h.segment_id, reverse=True)[:30]
    ranked = sorted(reach, key=lambda h: (-score(h), -h.at.timestamp(), h.segment_id))
    assert [h.segment_id for h in deep.hits] == [h.segment_id for h in ranked[20:30]], q
    grouped = run(
        generated, q, filters, count_cap=cap, rank_window=window, group_by_call=True, limit=3
    )
    assert not grouped.total_exact
    assert {h.segment_id for g in grouped.groups or [] for h in g.hits} <= {
        h.segment_id for h in newest
    }
    assert grouped.grouped_total == len({h.call_id for h in newest}), q


def test_newest_matches_are_found_without_reading_them_all(generated: Runtime) -> None:
    """``backend.newest`` (FTS5 backwards; PostgreSQL progressive id windows) gives the count,
    smallest and largest of the newest n matches, as sorting every match would."""
    for q in ["您", "京", "{plate}", '"call you back"', "您 zq", "投诉 -退款", "司机迟到"]:
        _check_newest(generated, q.format(**_known(generated)))


def _check_newest(generated: Runtime, q: str) -> None:
    every = sorted(
        (h.segment_id for h in run(generated, q, count_cap=None, limit=10_000).hits),
        reverse=True,
    )
    with generated.db.session() as session:
        backend = backend_for(session)
        tree = backend.tree_ids(parse_query(q))
        assert tree is not None
        found = sa.select(tree.subquery("ids").c.sid).subquery("matching")
        for n in (1, 7, 41, 500, len(every), len(every) + 1, 5_000):
            top = every[:n]
            expected = (len(top), top[-1], top[0]) if top else (0, 0, 0)
            count, low, high, kept = backend.newest(session, found, n, min(n, 25))
            assert (count, low, high) == expected, (q, n)
            if not isinstance(kept, list):
                kept = list(session.scalars(kept))
            assert sorted(kept, reverse=True) == top[:25], (q, n)


def test_capped_totals_reach_the_api_and_the_page(
    generated: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_service, "COUNT_CAP", 25)
    with api_client(generated, "qa") as qa:
        api = qa.get("/api/search", params={"q": "您"}).json()
        assert (api["total"], api["total_exact"]) == (25, False)
        plate = _known(generated)["plate"]
        rare = qa.get("/api/search", params={"q": plate}).json()
        assert rare["total_exact"] and rare["total"] == len(rare["hits"]) > 0
        page = qa.get("/search", params={"q": "您"}, headers={"Accept": "text/html"}).text
        assert re.search(r'id="search-total">25\+ ', page)
        exact = qa.get("/search", params={"q": plate}, headers={"Accept": "text/html"}).text
        assert re.search(rf'id="search-total">{rare["total"]} ', exact)


def test_generated_calls_are_a_month_in_time_order(generated: Runtime) -> None:
    with generated.db.session() as session:
        rows = session.execute(sa.select(Call.id, Call.entered_at).order_by(Call.id)).all()
    times = [r.entered_at for r in rows]
    assert len(rows) == SEGMENTS // 20 and times == sorted(times)
    assert (times[-1] - times[0]).days >= 20
    again = replace(SearchOptions(), count_cap=None)
    assert again.count_cap is None and SearchOptions().count_cap == search_service.COUNT_CAP
    assert SearchOptions().rank_window == search_service.RANK_WINDOW
