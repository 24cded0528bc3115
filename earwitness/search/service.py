"""Run a parsed query: candidates from the backend, filters over calls and cases, ranking,
pagination, grouping by call, highlights placed on the original text.

The boolean tree becomes set operations over per-term selects (AND → INTERSECT,
OR → UNION, NOT → EXCEPT); the score of a hit is the sum of its positive terms'
scores, so a segment matching more of the query, more often, in less text, ranks
higher. Filters join the call, queue, agent and case tables at query time, so
linking a call to a case is visible to search at once, without reindexing.

At call-centre scale (issue 17) a first, unscored pass reads the newest ``COUNT_CAP + 1``
matches (counted in SQL, never fetched): below the cap that is every match, and the scoring
pass is limited to their id range (the answer is exactly the old one); above it the total is
reported as a lower bound (``total_exact`` false, shown "10000+") and only the newest
``RANK_WINDOW`` matches are ranked, by :func:`window_score` computed from their text instead
of the engine's bm25, whose IDF pass alone walks every match of every phrase (bm25 over
300 000 hits of a common word cost 0.9 s). ``SearchOptions(count_cap=None)`` is the old path,
kept as the reference the tests compare against.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from earwitness.errors import NotFound
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
from earwitness.search.backends import PG_AVG_CHARS, SearchBackend, backend_for
from earwitness.search.normalize import fold
from earwitness.search.query import And, Node, Or, Term, parse_query, positive_terms
from earwitness.telephony.queries import agent_matches

Sort = Literal["relevance", "newest", "oldest"]
FUZZY_CANDIDATES = 20_000  # segments sharing a trigram that rapidfuzz looks at, best first
FUZZY_KEEP = 2_000  # near-misses kept per fuzzy term (bound parameters stay few)
# Beyond this many matches the total is shown as "10000+": counting every one of 300 000
# hits of a common word costs more than the page itself (issue 17).
COUNT_CAP = 10_000
# Beyond COUNT_CAP matches only the newest this-many (by segment id, i.e. indexing order;
# more when the page reaches further) are ranked, by a score computed on their text, not by
# the engine's bm25: FTS5's bm25 walks the whole doclist of every phrase for its IDF, and
# ranking even 10 000 rows costs 30-80 ms at 1 M segments (benchmarks/README.md).
RANK_WINDOW = 1_000


@dataclass(frozen=True)
class SearchFilter:
    start: datetime | None = None
    end: datetime | None = None
    role: str | None = None
    agent: str | None = None
    queue: str | None = None
    caller: str | None = None
    case: str | None = None  # id or number
    category: str | None = None
    language: str | None = None
    outcome: str | None = None
    min_wait_s: float | None = None
    min_rings: int | None = None


@dataclass(frozen=True)
class SearchOptions:
    sort: Sort = "relevance"
    limit: int = 20
    offset: int = 0
    group_by_call: bool = False
    per_group: int = 5
    fuzzy: bool = False  # every term fuzzy, as if written term~
    fuzzy_min_score: float = 80.0
    # None: count and rank every match (the pre-issue-17 path, kept as the reference).
    count_cap: int | None = field(default_factory=lambda: COUNT_CAP)
    # Above the cap: how many of the newest matches are ranked (at least the page's reach).
    rank_window: int = field(default_factory=lambda: RANK_WINDOW)


@dataclass
class CaseRef:
    id: int
    number: str
    category: str


@dataclass
class SearchHit:
    segment_id: int
    recording_id: int
    call_id: int | None
    cases: list[CaseRef]
    at: datetime
    role: str
    speaker: str | None
    language: str | None
    start_s: float
    end_s: float
    text: str
    highlights: list[tuple[int, int]]
    html: str
    score: float
    caller: str | None
    audio_url: str


@dataclass
class HitGroup:
    call_id: int | None
    recording_id: int
    at: datetime
    score: float
    matches: int
    hits: list[SearchHit] = field(default_factory=list)


@dataclass
class SearchResult:
    query: str
    backend: str
    total: int
    limit: int
    offset: int
    sort: str
    hits: list[SearchHit] = field(default_factory=list)
    groups: list[HitGroup] | None = None
    grouped_total: int | None = None
    # False: more than ``total`` matches (show "10000+"); hits and groups then come from
    # the newest ``rank_window`` matches only, ranked by :func:`window_score`.
    total_exact: bool = True


def _fuzzify(node: Node) -> Node:
    if isinstance(node, Term):
        return Term(node.text, "fuzzy") if not node.short else node
    if isinstance(node, Or):
        return Or(tuple(_fuzzify(i) for i in node.items))
    return And(tuple(_fuzzify(i) for i in node.items), node.negated, node.boosts)


class _Compiler:
    """Turns the tree into set operations over one CTE per term."""

    def __init__(
        self,
        session: Session,
        backend: SearchBackend,
        options: SearchOptions,
        *,
        floor: int | None = None,
        ceiling: int | None = None,
        ids_only: bool = False,
        near_misses: dict[Term, dict[int, float]] | None = None,
    ) -> None:
        self.session = session
        self.backend = backend
        self.options = options
        # only segments with floor <= id <= ceiling: the ids the query can match at all
        self.floor, self.ceiling = floor, ceiling
        self.ids_only = ids_only  # unscored selects: for counting and finding the window
        self.ctes: dict[Term, Any] = {}
        self.scored: list[Any] = []
        # fuzzy term -> {segment id: weight}, shared by the passes of one search: the
        # candidate scan is the whole cost of a fuzzy query, so it runs once, not per pass
        self.near_misses = {} if near_misses is None else near_misses

    def leaf(self, term: Term) -> Any:
        if term not in self.ctes:
            key = f"t{len(self.ctes)}"
            if term.kind == "fuzzy" and not term.short:
                self.ctes[term] = self._fuzzy(term, key)
            elif self.ids_only:
                self.ctes[term] = self.backend.term_ids(term, key).cte(key)
            else:
                # MATERIALIZED: computed once, and FTS5's bm25() is only allowed in its own
                # query, never where SQLite would flatten it into an aggregate.
                select = self.backend.term_select(term, key, self.floor, self.ceiling)
                self.ctes[term] = select.cte(key).prefix_with("MATERIALIZED")
        return self.ctes[term]

    def _fuzzy(self, term: Term, key: str) -> Any:
        """Near-misses: trigram-sharing candidates, kept when rapidfuzz's best partial
        alignment scores at least ``fuzzy_min_score`` (one wrong character in seven: 86)."""
        keep = self.near_misses_of(term)
        column = sa.literal_column("segment_id", sa.Integer)
        lo, hi = self.floor or 0, self.ceiling
        keep = {sid: w for sid, w in keep.items() if sid >= lo and (hi is None or sid <= hi)}
        weights = sa.case(keep, value=column, else_=0.0) if keep else sa.literal(0.0)
        return (
            sa.select(column.label("sid"), sa.cast(weights, sa.Float).label("score"))
            .select_from(sa.table("search_segments"))
            .where(column.in_(list(keep)))
            .cte(key)
        )

    def near_misses_of(self, term: Term) -> dict[int, float]:
        """{segment id: weight} of a fuzzy term's near-misses (computed once per search)."""
        if term not in self.near_misses:
            keep = self._near(term, ranked=False)
            if len(keep) > FUZZY_KEEP:  # ties are cut in the engine's rank order
                keep = self._near(term, ranked=True)
                keep = dict(sorted(keep.items(), key=lambda kv: -kv[1])[:FUZZY_KEEP])
            self.near_misses[term] = keep
        return self.near_misses[term]

    def _near(self, term: Term, *, ranked: bool) -> dict[int, float]:
        keep: dict[int, float] = {}
        cutoff = self.options.fuzzy_min_score
        candidates = self.backend.fuzzy_candidates(
            self.session, term.text, FUZZY_CANDIDATES, ranked=ranked
        )
        for sid, norm in candidates:
            score = fuzz.partial_ratio(term.text, norm, score_cutoff=cutoff)
            if score:
                keep[sid] = score / 100.0
        return keep

    def candidates(self, node: Node, *, score: bool = True) -> Any:
        if isinstance(node, Term):
            cte = self.leaf(node)
            if score:
                self.scored.append(cte)
            return sa.select(cte.c.sid)
        parts: list[Any] = [self.candidates(i, score=score) for i in node.items]
        if isinstance(node, Or):
            return sa.select(sa.union(*parts).subquery().c.sid)
        if score:
            self.scored.extend(self.leaf(b) for b in node.boosts)
        found: Any = parts[0]
        if len(parts) > 1:
            found = sa.select(sa.intersect(*parts).subquery().c.sid)
        if node.negated:
            minus = [self.candidates(i, score=False) for i in node.negated]
            found = sa.select(sa.except_(found, *minus).subquery().c.sid)
        return found


def _case_ids(session: Session, case: str) -> list[int]:
    query = sa.select(Case.id).where(Case.number == case)
    if case.isdigit():
        query = sa.select(Case.id).where((Case.number == case) | (Case.id == int(case)))
    ids = list(session.scalars(query))
    if not ids:
        raise NotFound(f"case {case!r} does not exist")
    return ids


def phone_variants(number: str) -> list[str]:
    """The forms one number is stored in (PBX caller IDs vary): as typed, digits only, with
    and without the Chinese country code (+86, 86, 0086)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    national = digits
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 7:
            national = digits[len(prefix) :]
            break
    out = {number.strip(), digits}
    if national:
        out |= {national, "+86" + national, "86" + national, "0086" + national}
    return sorted(v for v in out if v)


def _apply_filters(query: Any, session: Session, f: SearchFilter, at: Any) -> Any:
    if f.start is not None:
        query = query.where(at >= f.start)
    if f.end is not None:
        query = query.where(at < f.end)
    if f.role:
        query = query.where(Segment.role == f.role)
    if f.language:
        query = query.where(sa.func.coalesce(Segment.language, Transcript.language) == f.language)
    if f.agent:
        agents = sa.select(Agent.id).where(agent_matches(f.agent))  # one agent identity
        query = query.where(Call.agent_id.in_(agents))
    if f.queue:
        query = query.where(Call.queue_id.in_(sa.select(Queue.id).where(Queue.name == f.queue)))
    if f.caller:
        query = query.where(Call.caller.in_(phone_variants(f.caller)))
    if f.outcome:
        query = query.where(Call.outcome == f.outcome)
    if f.min_wait_s is not None:
        query = query.where(Call.wait_s >= f.min_wait_s)
    if f.min_rings is not None:
        query = query.where(Call.rings >= f.min_rings)
    case_ids: Any = None
    if f.case:
        case_ids = _case_ids(session, f.case)
    if f.category:
        by_category = sa.select(Case.id).where(Case.category == f.category)
        case_ids = by_category if case_ids is None else by_category.where(Case.id.in_(case_ids))
    if case_ids is not None:
        linked = sa.select(case_calls.c.call_id).where(case_calls.c.case_id.in_(case_ids))
        query = query.where(Recording.case_id.in_(case_ids) | Call.id.in_(linked))
    return query


def search(
    session: Session,
    q: str,
    filters: SearchFilter | None = None,
    options: SearchOptions | None = None,
) -> SearchResult:
    """Search the indexed transcripts; raises BadInput for a query that cannot be run."""
    filters = filters or SearchFilter()
    options = options or SearchOptions()
    root = parse_query(q)
    if options.fuzzy:
        root = _fuzzify(root)
    backend = backend_for(session)
    backend.begin(session)
    near_misses: dict[Term, dict[int, float]] = {}
    window = _Window(None, None, None, True)
    if options.count_cap is not None:
        window = _count_and_window(session, backend, root, filters, options, near_misses)
    if window.total == 0:  # nothing matches: skip scoring (a common word can cost 300 ms)
        empty = SearchResult(q, backend.name, 0, options.limit, options.offset, options.sort)
        if options.group_by_call:
            empty.groups, empty.grouped_total = [], 0
        return empty
    if window.newest is not None:
        postgres = session.get_bind().dialect.name == "postgresql"
        filtered = _ranked_window(root, window.newest, near_misses, postgres=postgres)
    else:
        filtered = _scored(session, backend, root, filters, options, window, near_misses)
    if window.total is None:
        total = session.scalar(sa.select(sa.func.count()).select_from(filtered)) or 0
    else:
        total = window.total
    order = _order(options.sort, filtered.c.score, filtered.c.at)
    result = SearchResult(
        q, backend.name, total, options.limit, options.offset, options.sort, hits=[],
        total_exact=window.exact,
    )  # fmt: skip
    terms = positive_terms(root)
    if not options.group_by_call:
        rows = session.execute(
            sa.select(filtered.c.sid, filtered.c.score)
            .order_by(*order, filtered.c.sid)
            .limit(options.limit)
            .offset(options.offset)
        ).all()
        result.hits = _hits(session, [(r.sid, r.score) for r in rows], terms, options)
        return result
    return _grouped(session, filtered, order, terms, options, result)


def _with_call(scored: Any) -> Any:
    """(sid, score) joined to what ordering, grouping and filters need: time, recording, call."""
    at = sa.func.coalesce(Call.entered_at, Recording.created_at).label("at")
    query = (
        sa.select(scored.c.sid, scored.c.score, at, Recording.id.label("rid"), Recording.call_id)
        .join(Segment, Segment.id == scored.c.sid)
        .join(Transcript, Transcript.id == Segment.transcript_id)
        .join(Recording, Recording.id == Transcript.recording_id)
        .outerjoin(Call, Call.id == Recording.call_id)
    )
    return query, at


def _scored(
    session: Session,
    backend: SearchBackend,
    root: Node,
    filters: SearchFilter,
    options: SearchOptions,
    window: _Window,
    near_misses: dict[Term, dict[int, float]],
) -> Any:
    """Every match (within the window's id range), scored by the engine (FTS5 bm25 or the
    PostgreSQL scores), filtered: the exact path, for totals up to the cap and the reference."""
    compiler = _Compiler(
        session, backend, options, floor=window.floor, ceiling=window.ceiling,
        near_misses=near_misses,
    )  # fmt: skip
    candidates = compiler.candidates(root)
    scored_ctes = list(dict.fromkeys(compiler.scored))
    if isinstance(root, Term):
        only = scored_ctes[0]
        scored = sa.select(only.c.sid, only.c.score).subquery("scored")
    else:
        # Sum the positive terms' scores per segment: one pass over their matches, grouped
        # (joining the term sets pairwise would be quadratic on SQLite's materialised CTEs).
        parts = sa.union_all(*(sa.select(c.c.sid, c.c.score) for c in scored_ctes)).subquery()
        scored = (
            sa.select(parts.c.sid, sa.cast(sa.func.sum(parts.c.score), sa.Float).label("score"))
            .where(parts.c.sid.in_(candidates))
            .group_by(parts.c.sid)
            .subquery("scored")
        )
    base, at = _with_call(scored)
    return _apply_filters(base, session, filters, at).subquery("hits")


def window_term_score(norm: str, text: str) -> float:
    """One term's score in a segment for the ranked window (what :func:`_ranked_window` computes
    in SQL, operation for operation, so the tests can recompute it): BM25's term-frequency part
    — occurrences of the folded term in the folded text, saturated (k1 1.2) and normalised by
    length (b 0.75) — without IDF. For one term the IDF is the same for every matching row, so
    the order is bm25's; for several terms each counts alike."""
    n = float(len(norm))
    tf = float(len(norm) - len(norm.replace(text, ""))) / float(len(text))
    return tf * 2.2 / (tf + 1.2 * (0.25 + n * 0.75 / PG_AVG_CHARS))


def window_score(norm: str, terms: list[Term], near_misses: dict[Term, float]) -> float:
    """A segment's score in the ranked window: the sum of its distinct positive terms' scores
    in query order (a fuzzy term: its rapidfuzz weight)."""
    total = 0.0
    for term in dict.fromkeys(terms):
        if term.kind == "fuzzy" and not term.short:
            total = total + near_misses.get(term, 0.0)
        else:
            total = total + window_term_score(norm, term.text)
    return total


def _ranked_window(
    root: Node, ids: Any, near_misses: dict[Term, dict[int, float]], *, postgres: bool
) -> Any:
    """The newest matches (``ids``, a list or a select, already filtered), scored by
    :func:`window_score` in SQL. Used above the cap instead of the engine's ranking: bm25's
    IDF pass alone walks every match of every phrase in the index, and nothing here depends
    on how many matches there are beyond the window."""
    indexed = SearchSegment.__table__
    norm = indexed.c.norm
    terms = list(dict.fromkeys(positive_terms(root)))
    # Each term's occurrences counted once per row (the score uses them twice), in a
    # materialised window: SQLite would otherwise inline the expressions and count twice.
    counted = [
        sa.cast(
            sa.func.length(norm)
            - sa.func.length(sa.func.replace(norm, sa.literal(term.text, sa.Text), "")),
            sa.Float,
        ).label(f"c{k}")
        for k, term in enumerate(terms)
    ]
    window = (
        sa.select(
            indexed.c.segment_id.label("sid"),
            indexed.c.recording_id.label("rid"),
            sa.cast(sa.func.length(norm), sa.Float).label("n"),
            *counted,
        )
        .where(_id_in(indexed.c.segment_id, ids))
        .cte("window")
        .prefix_with("MATERIALIZED")
    )
    score: Any = sa.literal(0.0, sa.Float)
    for k, term in enumerate(terms):
        if term.kind == "fuzzy" and not term.short:
            weights = near_misses.get(term, {})
            if weights:
                score = score + sa.case(weights, value=window.c.sid, else_=0.0)
            continue
        tf = window.c[f"c{k}"] / float(len(term.text))
        score = score + tf * 2.2 / (tf + 1.2 * (0.25 + window.c.n * 0.75 / PG_AVG_CHARS))
    score = sa.cast(score, sa.Float).label("score")
    if not postgres:
        # SQLite: two rowid probes per row to the call's time (1 ms less than joining the
        # window's distinct recordings, measured side by side at 1 M segments).
        of_recording = Recording.id == window.c.rid
        at = (
            sa.select(sa.func.coalesce(Call.entered_at, Recording.created_at))
            .select_from(Recording)
            .outerjoin(Call, Call.id == Recording.call_id)
            .where(of_recording)
            .scalar_subquery()
        )
        call_id = sa.select(Recording.call_id).where(of_recording).scalar_subquery()
        return sa.select(
            window.c.sid, score, at.label("at"), window.c.rid, call_id.label("call_id")
        ).subquery("hits")
    # PostgreSQL: once per distinct recording of the window (about 50 for 1 000 rows), given
    # as one array - for ``IN (SELECT ...)`` it expects 200 and hashes all 50 000 recordings
    # (12 ms); the correlated lookups cost 3 ms.
    of_window = sa.select(sa.func.array_agg(sa.distinct(window.c.rid))).scalar_subquery()
    times = (
        sa.select(
            Recording.id.label("rid"),
            sa.func.coalesce(Call.entered_at, Recording.created_at).label("at"),
            Recording.call_id,
        )
        .outerjoin(Call, Call.id == Recording.call_id)
        .where(Recording.id == sa.any_(sa.cast(of_window, ARRAY(sa.Integer))))
        .cte("times")
        .prefix_with("MATERIALIZED")
    )
    return (
        sa.select(window.c.sid, score, times.c.at, window.c.rid, times.c.call_id)
        .join_from(window, times, times.c.rid == window.c.rid)
        .subquery("hits")
    )


def _id_in(column: Any, ids: Any) -> Any:
    """``column IN ids``; a list (PostgreSQL's windows return one) goes as one array
    parameter: rendering and binding 1 000 separate parameters cost 10 ms per search."""
    if isinstance(ids, list):
        return column == sa.any_(sa.bindparam("window_ids", ids, type_=ARRAY(sa.Integer)))
    return column.in_(ids)


def _hit_rows(sids: Any) -> Any:
    """The hits' rows (segment, transcript, recording, call) for ``sids``, with their time:
    what every filter needs."""
    at = sa.func.coalesce(Call.entered_at, Recording.created_at).label("at")
    return (
        sa.select(sids.c.sid, at)
        .join(Segment, Segment.id == sids.c.sid)
        .join(Transcript, Transcript.id == Segment.transcript_id)
        .join(Recording, Recording.id == Transcript.recording_id)
        .outerjoin(Call, Call.id == Recording.call_id),
        at,
    )


@dataclass(frozen=True)
class _Window:
    """What the unscored pass learnt: the total (None: not counted), the id range the
    scoring pass needs to look at, and above the cap the newest matches to rank."""

    total: int | None
    floor: int | None
    ceiling: int | None
    exact: bool
    newest: Any = None  # above the cap: the ids to rank (a list or a select)


def _count_and_window(
    session: Session, backend: SearchBackend, root: Node, filters: SearchFilter,
    options: SearchOptions, near_misses: dict[Term, dict[int, float]],
) -> _Window:  # fmt: skip
    """Collect the newest ``count_cap + 1`` matches, newest first, in one unscored pass (FTS5
    reads its doclists backwards; PostgreSQL widens an id window, see
    :meth:`SearchBackend.newest_ids`). Up to the cap that is every match: the total is exact
    and the scoring pass is limited to their id range (the answer is the old one). Beyond it
    the total is the cap, shown "10000+", and the newest ``rank_window`` matches (at least
    the page's reach) are ranked. Nothing joins the calls unless a filter needs them."""
    cap = options.count_cap
    assert cap is not None
    tree = backend.tree_ids(root)
    if tree is None:
        compiler = _Compiler(session, backend, options, ids_only=True, near_misses=near_misses)
        tree = compiler.candidates(root, score=False)
    ids = tree.subquery("ids")
    if filters == SearchFilter():
        matching = sa.select(ids.c.sid)
    else:
        rows, at = _hit_rows(ids)
        matching = _apply_filters(rows, session, filters, at).with_only_columns(ids.c.sid)
    found = matching.subquery("matching")
    reach = min(cap, max(options.rank_window, options.offset + options.limit))
    direct = (
        backend.newest_of(session, root, found, cap + 1, reach)
        if filters == SearchFilter()
        else None
    )
    if direct is not None:
        total, lo, hi, newest = direct
        if total <= cap:
            return _Window(total, lo or None, hi or None, True)
        return _Window(cap, None, None, False, newest)
    if filters == SearchFilter() and backend.at_least(session, root, cap + 1):
        newest_ids = sa.select(found.c.sid).order_by(found.c.sid.desc()).limit(reach)
        return _Window(cap, None, None, False, newest_ids)
    total, lo, hi, newest = backend.newest(session, found, cap + 1, reach)
    if total <= cap:
        return _Window(total, lo or None, hi or None, True)
    return _Window(cap, None, None, False, newest)


def _order(sort: Sort, score: Any, at: Any) -> list[Any]:
    if sort == "newest":
        return [at.desc(), score.desc()]
    if sort == "oldest":
        return [at.asc(), score.desc()]
    return [score.desc(), at.desc()]


def _grouped(
    session: Session,
    filtered: Any,
    order: list[Any],
    terms: list[Term],
    options: SearchOptions,
    result: SearchResult,
) -> SearchResult:
    """Page over calls (a recording without a call is its own group), best hits inside."""
    key = sa.func.coalesce(filtered.c.call_id, -filtered.c.rid).label("gkey")
    groups = sa.select(
        key,
        sa.func.max(filtered.c.score).label("score"),
        sa.func.max(filtered.c.at).label("at"),
        sa.func.min(filtered.c.rid).label("rid"),
        sa.func.count().label("matches"),
    ).group_by(key)
    grouped = groups.subquery("groups")
    result.grouped_total = session.scalar(sa.select(sa.func.count()).select_from(grouped)) or 0
    page = session.execute(
        sa.select(grouped)
        .order_by(*_order(options.sort, grouped.c.score, grouped.c.at), grouped.c.gkey)
        .limit(options.limit)
        .offset(options.offset)
    ).all()
    keys = [g.gkey for g in page]
    rows = session.execute(
        sa.select(filtered.c.sid, filtered.c.score, key)
        .where(key.in_(keys))
        .order_by(*order, filtered.c.sid)
    ).all()
    per_group: dict[int, list[tuple[int, float]]] = {}
    for r in rows:
        bucket = per_group.setdefault(r.gkey, [])
        if len(bucket) < options.per_group:
            bucket.append((r.sid, r.score))
    hits = {h.segment_id: h for h in _hits(session, [x for b in per_group.values() for x in b],
                                           terms, options)}  # fmt: skip
    result.groups = [
        HitGroup(
            call_id=g.gkey if g.gkey > 0 else None,
            recording_id=g.rid,
            at=hits[per_group[g.gkey][0][0]].at,
            score=float(g.score),
            matches=int(g.matches),
            hits=[hits[sid] for sid, _ in per_group.get(g.gkey, [])],
        )
        for g in page
    ]
    result.hits = [h for grp in result.groups for h in grp.hits]
    return result


def _hits(
    session: Session, rows: list[tuple[int, float]], terms: list[Term], options: SearchOptions
) -> list[SearchHit]:
    if not rows:
        return []
    ids = [sid for sid, _ in rows]
    # Plain columns, not ORM entities: the page's 20 rows cost 5 ms as objects at 1 M segments.
    data = {
        r.id: r
        for r in session.execute(
            sa.select(
                Segment.id,
                Segment.role,
                Segment.speaker,
                Segment.language,
                Segment.start_s,
                Segment.end_s,
                Segment.text,
                Recording.id.label("rid"),
                Recording.call_id,
                Recording.case_id,
                Recording.created_at,
                Call.id.label("cid"),
                Call.entered_at,
                Call.caller,
            )  # fmt: skip
            .join(Transcript, Transcript.id == Segment.transcript_id)
            .join(Recording, Recording.id == Transcript.recording_id)
            .outerjoin(Call, Call.id == Recording.call_id)
            .where(Segment.id.in_(ids))
        )
    }
    cases = _cases_of(session, [(r.rid, r.case_id, r.call_id) for r in data.values()])
    out: list[SearchHit] = []
    for sid, score in rows:
        row = data[sid]
        spans = highlight_spans(row.text, terms, options.fuzzy_min_score)
        has_call = row.cid is not None
        out.append(
            SearchHit(
                segment_id=row.id,
                recording_id=row.rid,
                call_id=row.call_id,
                cases=cases.get(row.rid, []),
                at=row.entered_at if has_call else row.created_at,
                role=row.role,
                speaker=row.speaker,
                language=row.language,
                start_s=row.start_s,
                end_s=row.end_s,
                text=row.text,
                highlights=spans,
                html=mark(row.text, spans),
                score=round(float(score), 6),
                caller=row.caller if has_call else None,
                audio_url=f"/api/recordings/{row.rid}/audio#t={row.start_s:g}",
            )
        )
    return out


def _cases_of(
    session: Session, recordings: list[tuple[int, int | None, int | None]]
) -> dict[int, list[CaseRef]]:
    call_ids = {call for _, _, call in recordings if call is not None}
    direct = {case for _, case, _ in recordings if case is not None}
    links = session.execute(
        sa.select(case_calls.c.call_id, case_calls.c.case_id).where(
            case_calls.c.call_id.in_(call_ids)
        )
    ).all()
    wanted = direct | {link.case_id for link in links}
    refs = {
        c.id: CaseRef(c.id, c.number, c.category)
        for c in (
            session.execute(sa.select(Case.id, Case.number, Case.category).where(
                Case.id.in_(wanted)
            )) if wanted else []
        )
    }  # fmt: skip
    out: dict[int, list[CaseRef]] = {}
    for rid, case_id, call_id in recordings:
        ids = {case_id} if case_id is not None else set()
        ids |= {link.case_id for link in links if link.call_id == call_id}
        out[rid] = [refs[i] for i in sorted(ids) if i in refs]
    return out


def highlight_spans(text: str, terms: list[Term], fuzzy_min_score: float) -> list[tuple[int, int]]:
    """[start, end) character ranges of ``text`` that matched, merged, in order. Computed on
    the folded text and mapped back, so they are the same whichever backend found the hit."""
    folded = fold(text)
    spans: list[tuple[int, int]] = []
    for term in terms:
        needle = term.text
        start = folded.text.find(needle)
        found = False
        while start >= 0 and needle:
            spans.append(folded.original_span(start, start + len(needle)))
            found = True
            start = folded.text.find(needle, start + len(needle))
        if not found and term.kind == "fuzzy" and len(needle) >= 3:
            window = _closest_window(needle, folded.text, fuzzy_min_score)
            if window is not None:
                spans.append(folded.original_span(*window))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def _closest_window(needle: str, text: str, min_score: float) -> tuple[int, int] | None:
    """The stretch of ``text`` nearest to ``needle`` by edit distance (a wrong digit costs one
    edit, so the plate itself wins over a shifted window that also scores well by Indel)."""
    best: tuple[int, int, int] | None = None
    n = len(needle)
    for length in (n, n - 1, n + 1):
        for start in range(0, max(0, len(text) - length) + 1):
            cost = Levenshtein.distance(needle, text[start : start + length])
            if best is None or cost < best[0]:
                best = (cost, start, start + length)
    if best is None or fuzz.ratio(needle, text[best[1] : best[2]]) < min_score:
        return None
    return best[1], best[2]


def mark(text: str, spans: list[tuple[int, int]]) -> str:
    """HTML-escaped text with ``<mark>`` around the matched spans."""
    out, pos = [], 0
    for s, e in spans:
        out.append(html.escape(text[pos:s]))
        out.append("<mark>" + html.escape(text[s:e]) + "</mark>")
        pos = e
    out.append(html.escape(text[pos:]))
    return "".join(out)
