"""Transcript search on both backends (SQLite FTS5, PostgreSQL pg_trgm/tsvector).

A small corpus of Chinese and English complaint calls whose truth is written
below; every expectation (which segments, in which order, where the highlight
sits) is derived from it by hand, and the same assertions run on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from earwitness.errors import BadInput, NotFound
from earwitness.models import (
    Agent,
    Call,
    Case,
    Queue,
    Recording,
    SearchSegment,
    Segment,
    Transcript,
    case_calls,
)
from earwitness.runtime import Runtime
from earwitness.search import (
    SearchFilter,
    SearchOptions,
    caller_history,
    index_recording,
    reindex_all,
    search,
)
from earwitness.transcription.pipeline import CallTranscript, store_transcript
from earwitness.transcription.roles import RoleDecision
from earwitness.transcription.types import SegmentOut
from tests.accounts_helpers import api_client

DAY = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@dataclass
class Corpus:
    calls: dict[str, int]
    recordings: dict[str, int]
    segments: dict[str, int]  # name -> segment id
    case_number: str
    case_id: int


# name: (call key, role, text)
LINES = {
    "c1_agent": ("c1", "agent", "我们会给您退款，请放心。"),
    "c1_cust": ("c1", "customer", "司機遲到了五十分鐘，車牌京A12345。"),
    "c2_agent": ("c2", "agent", "I promise a full refund within three days."),
    "c2_cust": ("c2", "customer", "The driver was late again, refund refund please."),
    "c3_cust": ("c3", "customer", "京A12346 这辆车又迟到了"),
    "c3_agent": ("c3", "agent", "好的，我记录一下"),
    "r4": (None, "unknown", "退款问题已经处理"),
}
CALLS = {
    # key: (caller, agent, queue, day offset, wait_s, rings, outcome)
    "c1": ("13800138000", "alice", "rescue", 0, 8.0, 2, "answered"),
    "c2": ("13900139000", "bob", "complaints", 9, 30.0, 5, "answered"),
    "c3": ("+8613800138000", "alice", "rescue", 19, 12.0, 3, "abandoned"),
}


def build_corpus(runtime: Runtime) -> Corpus:
    calls: dict[str, int] = {}
    recordings: dict[str, int] = {}
    segments: dict[str, int] = {}
    with runtime.db.session() as s:
        queues: dict[str, Queue] = {}
        agents: dict[str, Agent] = {}
        for key, (caller, agent, queue, offset, wait, rings, outcome) in CALLS.items():
            at = DAY + timedelta(days=offset)
            call = Call(
                linkedid=key,
                caller=caller,
                entered_at=at,
                wait_s=wait,
                rings=rings,
                outcome=outcome,
                queue=queues.setdefault(queue, Queue(name=queue)),
                agent=agents.setdefault(
                    agent, Agent(interface=f"Local/{agent}@agents", name=agent)
                ),  # fmt: skip
            )
            s.add(call)
            s.flush()
            calls[key] = call.id
        for key in [*CALLS, None]:
            rec = Recording(call_id=calls[key] if key else None, state="ingested")
            s.add(rec)
            s.flush()
            recordings[key or "r4"] = rec.id
            tr = Transcript(recording_id=rec.id, model="base", language="zh")
            names = [n for n, (k, _, _) in LINES.items() if k == key]
            for i, name in enumerate(names):
                _, role, text = LINES[name]
                lang = "en" if text.isascii() else "zh"
                tr.segments.append(
                    Segment(start_s=i * 5.5, end_s=i * 5.5 + 4, text=text, role=role, language=lang)
                )
            s.add(tr)
            s.flush()
            for name, seg in zip(names, tr.segments, strict=True):
                segments[name] = seg.id
        case = Case(number="EW-2026-0001", category="delay", complainant_phone="13800138000")
        s.add(case)
        s.flush()
        s.execute(sa.insert(case_calls).values(case_id=case.id, call_id=calls["c1"]))
        case_id, number = case.id, case.number
        for rid in recordings.values():
            index_recording(s, rid)
    return Corpus(calls, recordings, segments, number, case_id)


@pytest.fixture
def corpus(runtime: Runtime) -> Corpus:
    return build_corpus(runtime)


def names(corpus: Corpus, result: object) -> list[str]:
    by_id = {v: k for k, v in corpus.segments.items()}
    return [by_id[h.segment_id] for h in result.hits]  # type: ignore[attr-defined]


def run(runtime: Runtime, q: str, **kw: object) -> object:
    filters = {k: v for k, v in kw.items() if k in SearchFilter.__dataclass_fields__}
    options = {k: v for k, v in kw.items() if k in SearchOptions.__dataclass_fields__}
    with runtime.db.session() as s:
        return search(s, q, SearchFilter(**filters), SearchOptions(**options))  # type: ignore[arg-type]


def test_chinese_short_terms_folding_and_highlights(runtime: Runtime, corpus: Corpus) -> None:
    found = run(runtime, "退款")  # two characters: below trigram length
    assert set(names(corpus, found)) == {"c1_agent", "r4"}
    hit = next(h for h in found.hits if h.segment_id == corpus.segments["c1_agent"])  # type: ignore[attr-defined]
    assert hit.highlights == [(5, 7)] and hit.text[5:7] == "退款"
    assert hit.html == "我们会给您<mark>退款</mark>，请放心。"
    assert hit.audio_url == f"/api/recordings/{corpus.recordings['c1']}/audio#t=0"
    assert set(names(corpus, run(runtime, "京"))) == {"c1_cust", "c3_cust"}  # one character
    # traditional 遲到 in the transcript, simplified in the query (and the other way round)
    assert set(names(corpus, run(runtime, "迟到"))) == {"c1_cust", "c3_cust"}
    assert set(names(corpus, run(runtime, "遲到"))) == {"c1_cust", "c3_cust"}
    # numerals folded: 五十 in the transcript is found as 50, highlighted where it was said
    fifty = run(runtime, "50分钟")
    assert names(corpus, fifty) == ["c1_cust"]
    text = LINES["c1_cust"][2]
    ((start, end),) = fifty.hits[0].highlights  # type: ignore[attr-defined]
    assert text[start:end] == "五十分鐘"
    assert names(corpus, run(runtime, "五十")) == ["c1_cust"]
    # plate: exact, full-width input, and a near-miss with ~
    assert names(corpus, run(runtime, "京A12345")) == ["c1_cust"]
    assert names(corpus, run(runtime, "京Ａ１２３４５")) == ["c1_cust"]
    near = run(runtime, "京A12346~")
    assert names(corpus, near) == ["c3_cust", "c1_cust"]  # the exact plate ranks first
    assert near.hits[1].text[slice(*near.hits[1].highlights[0])] == "京A12345"  # type: ignore[attr-defined]
    # a long unquoted run is split by jieba: words need not be adjacent
    assert names(corpus, run(runtime, "车又迟到")) == ["c3_cust"]
    assert names(corpus, run(runtime, "司机车牌")) == ["c1_cust"]
    assert run(runtime, '"司机车牌"').total == 0  # quoted: the exact phrase only  # type: ignore[attr-defined]


def test_english_boolean_ranking_and_prefix(runtime: Runtime, corpus: Corpus) -> None:
    refund = run(runtime, "refund")
    assert names(corpus, refund) == ["c2_cust", "c2_agent"]  # twice in a short line ranks first
    assert refund.hits[0].highlights == [(27, 33), (34, 40)]  # type: ignore[attr-defined]
    assert names(corpus, run(runtime, "REFUND -promise")) == ["c2_cust"]
    assert names(corpus, run(runtime, "refund NOT promise")) == ["c2_cust"]
    assert set(names(corpus, run(runtime, "promise OR 京A12345"))) == {"c2_agent", "c1_cust"}
    assert names(corpus, run(runtime, '"full refund"')) == ["c2_agent"]
    assert names(corpus, run(runtime, "refund AND (full OR 退款)")) == ["c2_agent"]
    assert names(corpus, run(runtime, "prom*")) == ["c2_agent"]
    assert run(runtime, "refund -refund").total == 0  # type: ignore[attr-defined]


def test_filters_sorting_paging_grouping(runtime: Runtime, corpus: Corpus) -> None:
    every = "退款 OR refund OR 京 OR 好的"
    assert run(runtime, every).total == 7  # type: ignore[attr-defined]
    assert set(names(corpus, run(runtime, every, role="customer"))) == {
        "c1_cust", "c2_cust", "c3_cust"}  # fmt: skip
    assert set(names(corpus, run(runtime, every, agent="bob"))) == {"c2_agent", "c2_cust"}
    assert set(names(corpus, run(runtime, every, queue="rescue"))) == {
        "c1_agent", "c1_cust", "c3_cust", "c3_agent"}  # fmt: skip
    # one number written two ways: both calls of 13800138000
    assert set(names(corpus, run(runtime, every, caller="138-0013-8000"))) == {
        "c1_agent", "c1_cust", "c3_cust", "c3_agent"}  # fmt: skip
    assert set(names(corpus, run(runtime, every, case=corpus.case_number))) == {
        "c1_agent", "c1_cust"}  # fmt: skip
    assert run(runtime, every, case=str(corpus.case_id)).total == 2  # type: ignore[attr-defined]
    assert run(runtime, every, category="delay").total == 2  # type: ignore[attr-defined]
    assert set(names(corpus, run(runtime, every, language="en"))) == {"c2_agent", "c2_cust"}
    assert set(names(corpus, run(runtime, every, outcome="abandoned"))) == {"c3_cust", "c3_agent"}
    assert set(names(corpus, run(runtime, every, min_rings=4))) == {"c2_agent", "c2_cust"}
    assert set(names(corpus, run(runtime, every, min_wait_s=10))) == {
        "c2_agent", "c2_cust", "c3_cust", "c3_agent"}  # fmt: skip
    window = run(runtime, every, start=DAY + timedelta(days=5), end=DAY + timedelta(days=10))
    assert set(names(corpus, window)) == {"c2_agent", "c2_cust"}
    with pytest.raises(NotFound):
        run(runtime, every, case="EW-0000-9999")
    newest = run(runtime, every, sort="newest", role="customer")
    assert names(corpus, newest) == ["c3_cust", "c2_cust", "c1_cust"]
    oldest = run(runtime, every, sort="oldest", role="customer", limit=1, offset=1)
    assert names(corpus, oldest) == ["c2_cust"] and oldest.total == 3  # type: ignore[attr-defined]
    grouped = run(runtime, every, group_by_call=True, sort="newest", limit=2)
    assert grouped.grouped_total == 4  # type: ignore[attr-defined]
    groups = grouped.groups  # type: ignore[attr-defined]
    assert [g.call_id for g in groups] == [None, corpus.calls["c3"]]  # r4 is newest (now)
    assert groups[1].matches == 2 and len(groups[1].hits) == 2
    assert groups[0].recording_id == corpus.recordings["r4"]


def test_bad_queries_never_500(runtime: Runtime, corpus: Corpus) -> None:
    with api_client(runtime) as api:
        ok = api.get("/api/search", params={"q": "退款", "role": "agent"})
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["total"] == 1 and body["hits"][0]["highlights"] == [[5, 7]]
        for q, fragment in [
            ('"unbalanced', "unbalanced quote"),
            ("(refund", "parenthesis"),
            ("refund)", "parenthesis"),
            ("-refund", "NOT needs"),
            ("x" * 10_000, "at most 500 characters"),
            ("", "at least 1"),
            ("!!! ^^^", "no searchable text"),
        ]:
            r = api.get("/api/search", params={"q": q})
            assert r.status_code == 422, (q[:30], r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert fragment in r.json()["detail"], r.json()
        # FTS/tsquery syntax and SQL are text, not syntax: valid (empty) results
        for q in ["NEAR(refund promise)", "refund:* ^full", "a & b | !c", "'; DROP TABLE calls; --",
                  "refund\" OR \"1\"=\"1", "*", "{col}: x", "京A12345' OR '1'='1"]:  # fmt: skip
            r = api.get("/api/search", params={"q": q})
            assert r.status_code in (200, 422), (q, r.text)
        assert api.get("/api/search", params={"q": "refund", "sort": "best"}).status_code == 422
        grouped = api.get("/api/search", params={"q": "京", "group": "call"}).json()
        assert len(grouped["groups"]) == 2
        history = api.get("/api/search/callers/+8613800138000").json()
        assert [c["id"] for c in history["calls"]] == [corpus.calls["c3"], corpus.calls["c1"]]
        assert [c["number"] for c in history["cases"]] == [corpus.case_number]
    with runtime.db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Call)) == 3


def test_index_follows_retranscription_and_reindex(runtime: Runtime, corpus: Corpus) -> None:
    rid = corpus.recordings["c2"]
    new = CallTranscript(
        model="base",
        diarization="channel",
        segments=[SegmentOut(start=1.0, end=3.0, text="We will send a voucher.", role="agent")],
        languages={"0": "en"},
        roles=RoleDecision(roles={}, rule="test", detail={}),
    )
    with runtime.db.session() as s:
        store_transcript(s, rid, new)  # replaces the old transcript of this model
    # the old segments are gone from the index at once (cascade), before any reindex
    assert names(corpus, run(runtime, "refund")) == []
    assert run(runtime, "voucher").total == 0  # type: ignore[attr-defined]
    with runtime.db.session() as s:
        assert index_recording(s, rid) == 1
    hit = run(runtime, "voucher").hits[0]  # type: ignore[attr-defined]
    assert hit.recording_id == rid and hit.start_s == 1.0 and hit.role == "agent"
    report = reindex_all(runtime.db)
    assert (report.recordings, report.segments) == (4, 6)
    assert run(runtime, "退款 OR voucher OR 京 OR 好的").total == 6  # type: ignore[attr-defined]


def test_engine_structures_exist(runtime: Runtime) -> None:
    """The schema comparison hides search_fts* objects; prove they are really there."""
    with runtime.db.engine.connect() as conn:
        if runtime.db.is_sqlite:
            got = set(conn.scalars(sa.text(
                "SELECT name FROM sqlite_master WHERE name LIKE 'search_fts%'")))  # fmt: skip
            assert {"search_fts", "search_fts_words", "search_fts_ai", "search_fts_ad"} <= got
        else:
            got = set(conn.scalars(sa.text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'search_segments'"
                " AND schemaname = current_schema()")))  # fmt: skip
            assert {"search_fts_norm_trgm", "search_fts_tokens_tsv"} <= got


def test_caller_history_newest_first(runtime: Runtime, corpus: Corpus) -> None:
    with runtime.db.session() as s:
        history = caller_history(s, "0086 138 0013 8000")
    assert [c.id for c in history.calls] == [corpus.calls["c3"], corpus.calls["c1"]]
    assert history.calls[1].recording_ids == [corpus.recordings["c1"]]
    assert [c.number for c in history.calls[1].cases] == [corpus.case_number]
    assert [c.number for c in history.cases] == [corpus.case_number]


@pytest.fixture
def worker_runtime(sqlite_settings: object) -> Iterator[Runtime]:
    rt = Runtime.open(sqlite_settings)  # type: ignore[arg-type]
    rt.start_worker()
    try:
        yield rt
    finally:
        rt.close()


def test_index_job_runs_on_the_worker(worker_runtime: Runtime) -> None:
    import time

    corpus = build_corpus(worker_runtime)
    with worker_runtime.db.session() as s:
        s.execute(sa.delete(SearchSegment))
    job_id = worker_runtime.submit("search.index", {"recording_id": corpus.recordings["c1"]})
    deadline = time.monotonic() + 20
    from earwitness.models import Job

    while time.monotonic() < deadline:
        with worker_runtime.db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            if job.state in ("succeeded", "failed"):
                break
        time.sleep(0.05)
    assert job.state == "succeeded", job.error
    assert job.result == {"recording_id": corpus.recordings["c1"], "segments": 2}
    assert names(corpus, run(worker_runtime, "京")) == ["c1_cust"]


def test_bad_query_is_bad_input_in_python_too(runtime: Runtime, corpus: Corpus) -> None:
    with pytest.raises(BadInput, match="unbalanced quote"):
        run(runtime, 'refund "full')


QUERY_ALPHABET = [
    *"\"“()（）-*~:^{}%_\\' ",
    *["OR", "AND", "NOT", "NEAR", "京", "A1", "迟到", "退款", "refund", "遲", "五十", "ｒ", "\x00"],
]


def test_random_queries_give_results_or_bad_input(runtime: Runtime, corpus: Corpus) -> None:
    """Whatever is typed, the answer is results or BadInput — never a database error."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None, database=None)
    @given(st.lists(st.sampled_from(QUERY_ALPHABET), max_size=12).map("".join))
    def check(q: str) -> None:
        try:
            result = run(runtime, q, fuzzy=len(q) % 3 == 0)
        except BadInput:
            return
        assert result.total >= 0  # type: ignore[attr-defined]

    check()
