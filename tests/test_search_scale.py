"""Search at call-centre scale (issue 17): the fast path gives the old path's answers.

A fixed generated corpus (benchmarks/datagen, 3 000 segments) is searched with every query
class — plates, order numbers, one- and two-character Chinese, very common words, phrases,
fuzzy, boolean — through the new path (unscored count and id window first, FTS5 merging
AND/OR/NOT itself, scoring only the ids that can match) and through the reference path
(``count_cap=None``: score and count every match, as before issue 17). Below the cap they
must agree field by field; above it, the total is the cap (shown "N+") and the page is the
reference ranking restricted to the newest ``cap`` matches, which is the deliberate change.
"""

from __future__ import annotations

import re
from dataclasses import asdict, replace

import pytest
import sqlalchemy as sa

from benchmarks.datagen import generate_segments, index_segments
from earwitness.models import Call, Segment
from earwitness.runtime import Runtime
from earwitness.search import SearchFilter, SearchOptions, SearchResult, search
from earwitness.search import service as search_service
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


@pytest.mark.parametrize(
    ("q", "filters"),
    [
        ("您", SearchFilter()),
        ("the", SearchFilter()),
        ("(京 OR 迟到) -您", SearchFilter()),
        ("您", SearchFilter(role="agent")),
        ("您 OR 迟到", SearchFilter(outcome="answered", queue="complaints")),
    ],
)
def test_above_the_cap_the_page_ranks_the_newest_matches(
    generated: Runtime, q: str, filters: SearchFilter
) -> None:
    cap = 40
    reference = run(generated, q, filters, count_cap=None, limit=10_000)
    assert reference.total > cap * 2
    newest = sorted((h.segment_id for h in reference.hits), reverse=True)[:cap]
    window = [h for h in reference.hits if h.segment_id >= newest[-1]]
    for sort in ("relevance", "newest"):
        ordered = run(generated, q, filters, count_cap=None, limit=10_000, sort=sort).hits
        expected = [h for h in ordered if h.segment_id >= newest[-1]]
        got = run(generated, q, filters, count_cap=cap, limit=15, offset=5, sort=sort)
        assert (got.total, got.total_exact) == (cap, False)
        assert [asdict(h) for h in got.hits] == [asdict(h) for h in expected[5:20]], sort
    assert len(window) == cap
    grouped = run(generated, q, filters, count_cap=cap, group_by_call=True, limit=100)
    assert not grouped.total_exact
    assert {h.segment_id for g in grouped.groups or [] for h in g.hits} <= set(newest)
    assert grouped.grouped_total == len({h.call_id for h in window})


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
