"""Read calls back from the database as plain records for the SLA maths, API and CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    FromClause,
    Select,
    bindparam,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, joinedload, selectinload

from earwitness.models import (
    Agent,
    AgentAttempt,
    AgentIdentity,
    AgentStateSpan,
    Call,
    Queue,
    Recording,
)
from earwitness.telephony.agents import Span, time_in_states
from earwitness.telephony.identities import MANUAL
from earwitness.telephony.live_view import AgentLabels
from earwitness.telephony.persist import SlaDefaults, target_for
from earwitness.telephony.records import CallOutcome, CallRecord
from earwitness.telephony.rings import SlaTarget


@dataclass(frozen=True)
class CallFilter:
    start: datetime | None = None
    end: datetime | None = None
    queue: str | None = None
    agent: str | None = None
    outcome: str | None = None
    caller: str | None = None
    min_rings: int | None = None
    queues: tuple[str, ...] = ()  # restrict to these queues (a lead's); empty: no limit


def filtered_calls(f: CallFilter) -> Select[Call]:
    query = select(Call)
    if f.start is not None:
        query = query.where(Call.entered_at >= f.start)
    if f.end is not None:
        query = query.where(Call.entered_at < f.end)
    if f.queue:
        query = query.join(Queue, Call.queue_id == Queue.id).where(Queue.name == f.queue)
    if f.agent:
        query = query.join(Agent, Call.agent_id == Agent.id).where(agent_matches(f.agent))
    if f.outcome:
        query = query.where(Call.outcome == f.outcome)
    if f.caller:
        query = query.where(Call.caller == f.caller)
    if f.min_rings is not None:
        query = query.where(Call.rings >= f.min_rings)
    if f.queues:
        query = query.where(Call.queue_id.in_(select(Queue.id).where(Queue.name.in_(f.queues))))
    return query


def agent_matches(label: str) -> ColumnElement[bool]:
    """Agent rows that are ``label``: by interface, by name, or by the one agent identity
    (``PJSIP/2001`` finds Lucy Zhao's calls under every identifier she has)."""
    same_person = select(AgentIdentity.name).where(AgentIdentity.identifier == label)
    return or_(Agent.interface == label, Agent.name == label, Agent.name.in_(same_person))


def to_record(row: Call) -> CallRecord:
    return CallRecord(
        key=f"{row.source}:{row.linkedid}",
        caller=row.caller,
        queue=row.queue.name if row.queue else None,
        agent=(row.agent.name or row.agent.interface) if row.agent else None,
        entered_at=row.entered_at,
        answered_at=row.answered_at,
        ended_at=row.ended_at if row.outcome != "in_progress" else None,
        outcome=CallOutcome(row.outcome),
        rona=tuple((a.agent.name or a.agent.interface) for a in row.attempts if a.result == "rona"),
        transferred_to=row.transferred_to,
    )


def call_records(session: Session, f: CallFilter) -> list[CallRecord]:
    # Attempts in one extra query, not one per call: SLA reports read weeks of calls.
    # Calls earwitness placed itself (follow-ups) answer nobody's wait: not in the SLA.
    query = (
        filtered_calls(f)
        .where(Call.kind != "outbound")
        .options(selectinload(Call.attempts))
        .order_by(Call.entered_at)
    )
    rows = session.scalars(query).unique().all()
    return [to_record(r) for r in rows]


def live_records(session: Session, but_source: str | None = None) -> list[CallRecord]:
    """The calls in progress, as ``call_records(CallFilter(outcome="in_progress"))`` reads
    them, with their queue, agent and attempts' agents loaded up front: the wallboard reads
    this on every change (issue 17), and one query per call and attempt made a burst of 50
    calls cost ~100 ms a snapshot. ``but_source``: leave that source's calls out (the
    tracker's, when its memory serves them)."""
    query = (
        filtered_calls(CallFilter(outcome="in_progress"))
        .where(Call.kind != "outbound")
        .where(Call.source != but_source if but_source else true())
        .options(
            selectinload(Call.attempts).joinedload(AgentAttempt.agent),
            joinedload(Call.queue),
            joinedload(Call.agent),
        )
        .order_by(Call.entered_at)
    )
    return [to_record(r) for r in session.scalars(query).unique().all()]


def target_of(session: Session, queue: str | None, defaults: SlaDefaults) -> SlaTarget:
    row = session.scalar(select(Queue).where(Queue.name == queue)) if queue else None
    return target_for(row, defaults)


def agent_states(session: Session, but_source: str | None = None) -> dict[str, str]:
    """agent -> ringing|talking for calls in progress (others are not listed)."""
    states: dict[str, str] = {}
    other = Call.source != but_source if but_source else true()
    ringing = session.scalars(
        select(AgentAttempt)
        .join(Call)
        .where(AgentAttempt.result == "ringing", Call.outcome == "in_progress", other)
        .options(joinedload(AgentAttempt.agent))
    ).all()
    for attempt in ringing:
        states[attempt.agent.name or attempt.agent.interface] = "ringing"
    talking = session.scalars(
        select(Call)
        .where(Call.outcome == "in_progress", Call.answered_at.is_not(None), other)
        .options(joinedload(Call.agent))
    ).all()
    for call in talking:
        if call.agent is not None:
            states[call.agent.name or call.agent.interface] = "talking"
    return states


def agent_labels(session: Session) -> AgentLabels:
    """Agent names as the database holds them, for labelling calls read from the tracker's
    memory (``live_view``): two small reads, one row per agent identifier."""
    manual: dict[str, str] = {}
    learned: dict[str, str] = {}
    for identifier, name, source in session.execute(
        select(AgentIdentity.identifier, AgentIdentity.name, AgentIdentity.source)
    ):
        (manual if source == MANUAL else learned)[identifier] = name
    rows = {i: n for i, n in session.execute(select(Agent.interface, Agent.name)) if n}
    return AgentLabels(manual, learned, rows)


def call_summary(row: Call) -> dict[str, Any]:
    """The API's and CLI's view of one call."""
    recording = max((r.id for r in row.recordings), default=None) if row.recordings else None
    return {
        "id": row.id,
        "linkedid": row.linkedid,
        "source": row.source,
        "kind": row.kind,
        "caller": row.caller,
        "queue": row.queue.name if row.queue else None,
        "agent": (row.agent.name or row.agent.interface) if row.agent else None,
        "entered_at": row.entered_at,
        "answered_at": row.answered_at,
        "ended_at": row.ended_at,
        "wait_s": row.wait_s,
        "rings": row.rings,
        "cadence": row.cadence,
        "outcome": row.outcome,
        "transferred_to": row.transferred_to,
        "time_source": row.time_source,
        "recording_id": recording,
    }


def call_page(session: Session, f: CallFilter, limit: int, offset: int) -> list[dict[str, Any]]:
    """One page of ``call_summary`` dicts, newest first, read as plain rows (issue 17).

    Same dicts as ``call_summary`` over the ORM rows (tests/test_sla_scale.py compares
    them), without building three ORM objects per call plus a recordings query. The
    statement is built once per combination of filters in use, from Core columns, and
    run with the filter values as parameters: building it each time was most of the
    page's Python time under load."""
    params = _filter_params(f) | {"limit": limit, "offset": offset}
    rows = session.execute(_page_statement(_shape(f)), params)
    return [dict(zip(_PAGE_KEYS, r, strict=True)) for r in rows]


def count_calls(session: Session, f: CallFilter) -> int:
    """How many calls match ``f`` (the same rows ``call_page`` pages through)."""
    return session.execute(_count_statement(_shape(f)), _filter_params(f)).scalar() or 0


def _shape(f: CallFilter) -> tuple[bool, ...]:
    """Which filters are in use: one cached statement per combination."""
    return (
        f.start is not None,
        f.end is not None,
        bool(f.queue),
        bool(f.agent),
        bool(f.outcome),
        bool(f.caller),
        f.min_rings is not None,
        bool(f.queues),
    )


def _filter_params(f: CallFilter) -> dict[str, Any]:
    return {
        "start": f.start,
        "end": f.end,
        "queue": f.queue,
        "agent": f.agent,
        "outcome": f.outcome,
        "caller": f.caller,
        "min_rings": f.min_rings,
        "queues": list(f.queues),
    }


def _filtered_core(shape: tuple[bool, ...]) -> tuple[FromClause, list[ColumnElement[bool]]]:
    """``filtered_calls`` over Core columns, with bound parameters in place of the values:
    the FROM clause (calls and the tables the filters join) and the WHERE conditions."""
    start, end, queue, agent, outcome, caller, min_rings, queues = shape
    calls = Call.__table__.c
    source: FromClause = Call.__table__
    where: list[ColumnElement[bool]] = []
    if start:
        where.append(calls.entered_at >= bindparam("start", type_=calls.entered_at.type))
    if end:
        where.append(calls.entered_at < bindparam("end", type_=calls.entered_at.type))
    if queue:
        q = Queue.__table__.c
        source = source.join(Queue.__table__, calls.queue_id == q.id)
        where.append(q.name == bindparam("queue"))
    if agent:
        a, i = Agent.__table__.c, AgentIdentity.__table__.c
        label: BindParameter[str] = bindparam("agent")
        same_person = select(i.name).where(i.identifier == label)
        source = source.join(Agent.__table__, calls.agent_id == a.id)
        where.append(or_(a.interface == label, a.name == label, a.name.in_(same_person)))
    if outcome:
        where.append(calls.outcome == bindparam("outcome"))
    if caller:
        where.append(calls.caller == bindparam("caller"))
    if min_rings:
        where.append(calls.rings >= bindparam("min_rings"))
    if queues:
        q = Queue.__table__.c
        names: BindParameter[list[str]] = bindparam("queues", expanding=True)
        where.append(calls.queue_id.in_(select(q.id).where(q.name.in_(names))))
    return source, where


@lru_cache(maxsize=64)
def _count_statement(shape: tuple[bool, ...]) -> Select[Any]:
    source, where = _filtered_core(shape)
    return select(func.count()).select_from(source).where(*where)


@lru_cache(maxsize=64)
def _page_statement(shape: tuple[bool, ...]) -> Select[Any]:
    calls = Call.__table__.c
    queue, agent = Queue.__table__.alias("page_queue"), Agent.__table__.alias("page_agent")
    recordings = Recording.__table__.c
    newest_recording = (
        select(func.max(recordings.id)).where(recordings.call_id == calls.id).scalar_subquery()
    )
    source, where = _filtered_core(shape)
    source = source.outerjoin(queue, calls.queue_id == queue.c.id)
    source = source.outerjoin(agent, calls.agent_id == agent.c.id)
    return (
        select(
            *(calls[c] for c in _SUMMARY_COLUMNS[:5]),
            queue.c.name,
            func.coalesce(agent.c.name, agent.c.interface),
            *(calls[c] for c in _SUMMARY_COLUMNS[5:]),
            newest_recording,
        )
        .select_from(source)
        .where(*where)
        .order_by(calls.entered_at.desc(), calls.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


_SUMMARY_COLUMNS = (
    *("id", "linkedid", "source", "kind", "caller"),
    *("entered_at", "answered_at", "ended_at", "wait_s", "rings", "cadence", "outcome"),
    *("transferred_to", "time_source"),
)
#: The keys of a page row, in ``call_summary``'s order (and the page statement's columns').
_PAGE_KEYS = (*_SUMMARY_COLUMNS[:5], "queue", "agent", *_SUMMARY_COLUMNS[5:], "recording_id")


def call_movement(row: Call) -> dict[str, Any]:
    """Where a call went: every queue it waited in (with the wait there) and its transfers.

    The call's own ``queue`` is the owner (the answering queue, else the last one)."""
    return {
        "queues": [
            {
                "queue": v.queue.name,
                "joined_at": v.joined_at,
                "left_at": v.left_at,
                "wait_s": v.wait_s,
                "result": v.result,
            }
            for v in row.visits
        ],
        "transfers": [
            {
                "kind": t.kind,
                "at": t.at,
                "transferer": t.transferer,
                "target": t.target,
                "result": t.result,
                "answered": t.answered_at is not None,
                "answered_at": t.answered_at,
                "answered_by": t.answered_by,
            }
            for t in row.transfers
        ],
    }


def agent_board(session: Session, day_start: datetime, now: datetime) -> list[dict[str, Any]]:
    """Every agent the PBX reported a member state for: the state now (with the pause
    reason), since when, and the seconds in each state from ``day_start`` to ``now``."""
    spans = session.scalars(
        select(AgentStateSpan)
        .where((AgentStateSpan.ended_at.is_(None)) | (AgentStateSpan.ended_at > day_start))
        .order_by(AgentStateSpan.agent_id, AgentStateSpan.started_at, AgentStateSpan.id)
        .options(joinedload(AgentStateSpan.agent))
    ).all()
    by_agent: dict[int, list[AgentStateSpan]] = {}
    for span in spans:
        by_agent.setdefault(span.agent_id, []).append(span)
    board = []
    for rows in by_agent.values():
        current = next((r for r in reversed(rows) if r.ended_at is None), None)
        if current is None:
            continue  # closed spans only: nothing to show as "now"
        agent = current.agent
        board.append(
            {
                "agent": agent.name or agent.interface,
                "interface": agent.interface,
                "state": current.state,
                "reason": current.reason,
                "since": current.started_at,
                "today_s": time_in_states(
                    (Span(r.state, r.started_at, r.ended_at) for r in rows), day_start, now
                ),
            }
        )
    return sorted(board, key=lambda a: str(a["agent"]))
