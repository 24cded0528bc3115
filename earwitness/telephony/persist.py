"""Write tracked calls to the database (the edge between the pure tracker and storage).

A call row is keyed by (source, linkedid) and updated in place as events arrive,
so a crash, a replay or a resync can re-save a call without creating a twin.
Rings are computed here, with the queue's own target cadence, and stored beside
the raw seconds.
"""

from __future__ import annotations

import logging
import queue as _queue
import threading as _threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.models import (
    Agent,
    AgentAttempt,
    AgentStateSpan,
    Call,
    CallEvent,
    CallTransfer,
    Queue,
    QueueVisit,
)
from earwitness.telephony.agents import AgentState
from earwitness.telephony.calls import TrackedCall
from earwitness.telephony.records import CallRecord
from earwitness.telephony.rings import Cadence, SlaTarget, ring_count

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlaDefaults:
    """The target used where a queue has none of its own."""

    rings: int = 3
    cadence: str = "cn"


def queue_row(session: Session, name: str, defaults: SlaDefaults) -> Queue:
    row = session.scalar(select(Queue).where(Queue.name == name))
    if row is None:
        row = Queue(name=name, sla_rings=defaults.rings, cadence=defaults.cadence)
        session.add(row)
        session.flush()
    return row


def agent_row(session: Session, interface: str, name: str | None = None) -> Agent:
    """The agent row of a PBX identifier, named by the one agent identity (issue 18): a
    name the PBX gives is learned for the identifier, a known name is applied."""
    from earwitness.telephony.identities import learn, name_for

    if name:
        learn(session, interface, name, "ami")
    known = name_for(session, interface) or name
    row = session.scalar(select(Agent).where(Agent.interface == interface))
    if row is None:
        row = Agent(interface=interface, name=known)
        session.add(row)
        session.flush()
    elif known and row.name != known:
        row.name = known
    return row


def target_for(queue: Queue | None, defaults: SlaDefaults) -> SlaTarget:
    """The SLA target of a queue: its rings and/or seconds, its country's cadence."""
    cadence = Cadence.for_country(queue.cadence if queue else defaults.cadence)
    if queue is None or (queue.sla_rings is None and queue.sla_seconds is None):
        return SlaTarget(rings=defaults.rings, cadence=cadence)
    return SlaTarget(rings=queue.sla_rings, seconds=queue.sla_seconds, cadence=cadence)


def apply_record(
    session: Session,
    row: Call,
    record: CallRecord,
    defaults: SlaDefaults,
    agent_name: str | None = None,
) -> None:
    """Copy a plain record onto a call row, deriving wait and rings."""
    row.caller = record.caller
    row.queue = queue_row(session, record.queue, defaults) if record.queue else None
    row.agent = agent_row(session, record.agent, agent_name) if record.agent else None
    row.entered_at, row.answered_at, row.ended_at = (
        record.entered_at,
        record.answered_at,
        record.ended_at,
    )
    row.outcome = record.outcome.value
    row.transferred_to = record.transferred_to
    row.wait_s = record.wait_s
    target = target_for(row.queue, defaults)
    row.cadence = target.cadence.name
    row.rings = ring_count(row.wait_s, target.cadence) if row.wait_s is not None else None


def save_tracked(session: Session, call: TrackedCall, defaults: SlaDefaults) -> Call:
    """Upsert one tracked call with its new events and its ring attempts."""
    row = session.scalar(select(Call).where(Call.source == "ami", Call.linkedid == call.linkedid))
    if row is None:
        row = Call(source="ami", linkedid=call.linkedid, entered_at=call.entered_at)
        session.add(row)
    row.kind = call.kind or "queue"
    row.caller_name = call.caller_name
    row.caller_uniqueid = call.caller_uniqueid
    row.hangup_cause = call.hangup_cause
    row.time_source = call.time_source
    apply_record(session, row, call.record(), defaults, call.agent_name)
    for note in call.notes:
        row.events.append(
            CallEvent(
                at=note.at,
                time_source=note.time_source,
                name=note.name,
                channel=note.channel,
                data=note.data,
            )
        )
    call.notes.clear()
    row.attempts = [
        AgentAttempt(
            agent=agent_row(session, a.agent, a.name),
            rang_at=a.rang_at,
            ended_at=a.ended_at,
            result=a.result,
        )
        for a in call.attempts
    ]
    row.visits = [
        QueueVisit(
            queue=queue_row(session, v.queue, defaults),
            joined_at=v.joined_at,
            left_at=v.left_at,
            wait_s=v.wait_s(),
            result=v.result,
        )
        for v in call.visits
    ]
    row.transfers = [
        CallTransfer(
            kind=t.kind,
            at=t.at,
            transferer=t.transferer,
            target=t.target[:120],
            result=t.result[:40],
            answered_at=t.answered_at,
            answered_by=t.answered_by,
        )
        for t in call.transfers
    ]
    session.flush()
    return row


def delete_tracked(session: Session, linkedid: str) -> bool:
    """Remove a call the tracker folded into another (an attended transfer's consultation)."""
    row = session.scalar(select(Call).where(Call.source == "ami", Call.linkedid == linkedid))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def save_agent_state(session: Session, state: AgentState) -> AgentStateSpan | None:
    """Close the agent's open span and open one for ``state``; nothing when unchanged.

    Re-sending the current state (a resync after a restart) is a no-op, so the time in the
    link's gap stays with the state the agent was last seen in."""
    agent = agent_row(session, state.agent, state.name)
    open_span = session.scalar(
        select(AgentStateSpan)
        .where(AgentStateSpan.agent_id == agent.id, AgentStateSpan.ended_at.is_(None))
        .order_by(AgentStateSpan.started_at.desc(), AgentStateSpan.id.desc())
        .limit(1)
    )
    reason = state.reason[:120] if state.reason else None
    if open_span is not None:
        if (open_span.state, open_span.reason) == (state.state, reason):
            return None
        open_span.ended_at = max(state.since, open_span.started_at)
    span = AgentStateSpan(agent=agent, state=state.state, reason=reason, started_at=state.since)
    session.add(span)
    session.flush()
    return span


def save_imported(
    session: Session,
    records: Iterable[CallRecord],
    defaults: SlaDefaults,
    *,
    source: str = "queue_log",
    progress: Callable[[int], None] | None = None,
    members: Iterable[tuple[str, str]] = (),
) -> tuple[int, int]:
    """Insert or update imported records keyed by their callid; returns (new, updated).

    ``members`` — (interface, name) pairs from ADDMEMBER lines — are learned first, so the
    imported calls carry the same agent names as live tracking."""
    from earwitness.telephony.identities import learn

    for interface, name in members:
        learn(session, interface, name, source)
    new = updated = 0
    for n, record in enumerate(records, start=1):
        row = session.scalar(select(Call).where(Call.source == source, Call.linkedid == record.key))
        if row is None:
            row = Call(source=source, linkedid=record.key, entered_at=record.entered_at)
            row.caller_uniqueid = record.key.split("#")[0]
            session.add(row)
            new += 1
        else:
            updated += 1
        row.kind = "queue"
        row.time_source = "event"
        apply_record(session, row, record, defaults)
        times: tuple[tuple[datetime, datetime | None], ...] = record.rona_times or tuple(
            (record.entered_at, None) for _ in record.rona
        )
        row.attempts = [
            AgentAttempt(
                agent=agent_row(session, agent), rang_at=rang, ended_at=stopped, result="rona"
            )
            for agent, (rang, stopped) in zip(record.rona, times, strict=True)
        ]
        if progress is not None:
            progress(n)
    session.flush()
    return new, updated


class DbWriter:
    """One thread that runs the tracker's database writes in order, off the asyncio loop.

    The AMI loop must keep answering Pings and reading events while the database is slow
    (SQLite waits up to 30 s for a lock; PostgreSQL may be reconnecting): the loop hands
    each write over as a callable and goes on. Order is kept, so a call's saves land in
    the order its events came.
    """

    def __init__(self, name: str = "earwitness-ami-writer") -> None:
        self._items: _queue.Queue[Callable[[], None] | None] = _queue.Queue()
        self._thread = _threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, write: Callable[[], None]) -> None:
        self._items.put(write)

    @property
    def backlog(self) -> int:
        return self._items.qsize()

    def close(self, timeout: float = 15.0) -> None:
        """Finish what is queued, then stop."""
        self._items.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            write = self._items.get()
            if write is None:
                return
            try:
                write()
            except Exception:  # each write logs its own failure; the thread must survive
                _log.exception("tracker write failed")
