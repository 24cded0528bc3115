"""Write tracked calls to the database (the edge between the pure tracker and storage).

A call row is keyed by (source, linkedid) and updated in place as events arrive,
so a crash, a replay or a resync can re-save a call without creating a twin.
Rings are computed here, with the queue's own target cadence, and stored beside
the raw seconds.
"""

from __future__ import annotations

import asyncio
import logging
import queue as _queue
import threading as _threading
import time as _time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, selectinload

from earwitness.db import Database
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


#: ``session.info`` key of the per-transaction row cache the tracker's batches turn on: a
#: batch saves the same agents and queues over and over (a ringall queue call names every
#: member on each save), and each look-up was several queries (issue 17).
ROW_CACHE = "earwitness.rows"


def _cached(session: Session, key: tuple[str, ...]) -> Any:
    cache: dict[tuple[str, ...], Any] | None = session.info.get(ROW_CACHE)
    return cache.get(key) if cache is not None else None


def _remember(session: Session, key: tuple[str, ...], row: Any) -> None:
    cache: dict[tuple[str, ...], Any] | None = session.info.get(ROW_CACHE)
    if cache is not None:
        cache[key] = row


def queue_row(session: Session, name: str, defaults: SlaDefaults) -> Queue:
    cached: Queue | None = _cached(session, ("queue", name))
    if cached is not None:
        return cached
    row = session.scalar(select(Queue).where(Queue.name == name))
    if row is None:
        row = Queue(name=name, sla_rings=defaults.rings, cadence=defaults.cadence)
        session.add(row)
        session.flush()
    _remember(session, ("queue", name), row)
    return row


def agent_row(session: Session, interface: str, name: str | None = None) -> Agent:
    """The agent row of a PBX identifier, named by the one agent identity (issue 18): a
    name the PBX gives is learned for the identifier, a known name is applied."""
    from earwitness.telephony.identities import learn, name_for

    key = ("agent", interface, name or "")
    cached: Agent | None = _cached(session, key)
    if cached is not None:  # same transaction, same arguments: same row, nothing to learn
        return cached
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
    _remember(session, key, row)
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
        # Added from the event's side: appending to ``row.events`` loaded every event the
        # call had so far (each save of a 50-call burst re-read them all, issue 17); the
        # back-reference appends to an unloaded collection without loading it.
        session.add(
            CallEvent(
                call=row,
                at=note.at,
                time_source=note.time_source,
                name=note.name,
                channel=note.channel,
                data=note.data,
            )
        )
    call.notes.clear()
    _sync(
        row.attempts,
        AgentAttempt,
        [
            {
                "agent": agent_row(session, a.agent, a.name),
                "rang_at": a.rang_at,
                "ended_at": a.ended_at,
                "result": a.result,
            }
            for a in call.attempts
        ],
    )
    _sync(
        row.visits,
        QueueVisit,
        [
            {
                "queue": queue_row(session, v.queue, defaults),
                "joined_at": v.joined_at,
                "left_at": v.left_at,
                "wait_s": v.wait_s(),
                "result": v.result,
            }
            for v in call.visits
        ],
    )
    _sync(
        row.transfers,
        CallTransfer,
        [
            {
                "kind": t.kind,
                "at": t.at,
                "transferer": t.transferer,
                "target": t.target[:120],
                "result": t.result[:40],
                "answered_at": t.answered_at,
                "answered_by": t.answered_by,
            }
            for t in call.transfers
        ],
    )
    session.flush()
    return row


def _sync(rows: list[Any], cls: type[Any], wanted: list[dict[str, Any]]) -> None:
    """Make a call's child rows (attempts, visits, transfers: lists the tracker only appends
    to or updates in place) hold ``wanted``, in order, changing only what differs. Replacing
    the whole list deleted and re-inserted every row on every save: ~100 saves of a call in
    a burst, each rewriting all its rings (issue 17)."""
    for row, values in zip(rows, wanted, strict=False):
        for key, value in values.items():
            if getattr(row, key) is not value and getattr(row, key) != value:
                setattr(row, key, value)
    del rows[len(wanted) :]
    rows.extend(cls(**values) for values in wanted[len(rows) :])


def load_tracked(session: Session, linkedids: Iterable[str]) -> None:
    """Load these tracker calls with everything :func:`save_tracked` replaces (attempts,
    visits, transfers) in one query per table, into the session; saving each then finds
    them there instead of loading each collection lazily (issue 17). Not their events:
    saving only adds to those, without loading them."""
    keys = sorted(set(linkedids))
    # The session's identity map holds clean objects weakly: keep them for its lifetime,
    # or they (and their loaded collections) are gone before the saves look them up.
    kept: list[Call] = session.info.setdefault("earwitness.loaded", [])
    for chunk in (keys[i : i + 500] for i in range(0, len(keys), 500)):
        kept += session.scalars(
            select(Call)
            .where(Call.source == "ami", Call.linkedid.in_(chunk))
            .options(
                selectinload(Call.attempts),
                selectinload(Call.visits),
                selectinload(Call.transfers),
            )
        ).all()


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
    cache: dict[tuple[str, ...], Any] | None = session.info.get(ROW_CACHE)
    key = ("open_span", str(agent.id))
    if cache is not None and key in cache:  # a batch: the span this function opened last
        open_span: AgentStateSpan | None = cache[key]
    else:
        open_span = session.scalar(
            select(AgentStateSpan)
            .where(AgentStateSpan.agent_id == agent.id, AgentStateSpan.ended_at.is_(None))
            .order_by(AgentStateSpan.started_at.desc(), AgentStateSpan.id.desc())
            .limit(1)
        )
        if cache is not None:
            cache[key] = open_span
    reason = state.reason[:120] if state.reason else None
    if open_span is not None:
        if (open_span.state, open_span.reason) == (state.state, reason):
            return None
        open_span.ended_at = max(state.since, open_span.started_at)
    span = AgentStateSpan(agent=agent, state=state.state, reason=reason, started_at=state.since)
    session.add(span)
    session.flush()
    _remember(session, key, span)
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


class LiveChanges:
    """A process-wide counter of committed tracker changes that live views wait on (issue 17).

    The wallboard stream used to poll the database every ``interval_s``; now the tracker's
    writer bumps this counter after each commit and the stream wakes at once. Waiters are
    asyncio futures on whatever loop the stream runs on, woken thread-safely from the writer
    thread. When the tracker runs in another process, :meth:`follow` turns that process's
    commits into bumps here (PostgreSQL ``LISTEN``, SQLite ``PRAGMA data_version``).
    """

    #: NOTIFY channel the writer signals on PostgreSQL (database-wide, like the tracker).
    CHANNEL = "earwitness_live"
    #: How often a follower polls SQLite's data_version (cheap: no table is read).
    SQLITE_POLL_S = 0.05

    def __init__(self) -> None:
        self._lock = _threading.Lock()
        self._version = 0
        self._commits = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._followers: dict[str, _Follower] = {}

    @property
    def version(self) -> int:
        return self._version

    @property
    def commits(self) -> int:
        """Bumps that were commits (not changes the tracker's memory shows first)."""
        return self._commits

    def bump(self, committed: bool = True) -> None:
        """Something the live views show changed (``committed``: in the database; else in
        the tracker's memory, ahead of its writer): wake every waiter."""
        with self._lock:
            self._version += 1
            self._commits += committed
            waiters = list(self._waiters)
        for loop, future in waiters:
            with suppress(RuntimeError):  # that stream's loop is closed: nobody to wake
                loop.call_soon_threadsafe(_wake, future)

    async def wait(self, seen: int, timeout: float) -> bool:
        """Wait until the version differs from ``seen`` (True) or ``timeout`` passes (False)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self._version != seen:
                return True
            self._waiters.add(entry)
        try:
            await asyncio.wait({future}, timeout=timeout)
        finally:
            with self._lock:
                self._waiters.discard(entry)
            future.cancel()
        return self._version != seen

    @contextmanager
    def follow(self, db: Database) -> Iterator[None]:
        """While open, commits by other processes to ``db`` bump this counter too."""
        with self._lock:
            follower = self._followers.get(db.url)
            if follower is None or not follower.is_alive():
                follower = self._followers[db.url] = _Follower(self, db)
                follower.users += 1
                follower.start()
            else:
                follower.users += 1
        try:
            yield
        finally:
            with self._lock:
                follower.users -= 1


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Follower(_threading.Thread):
    """Turns other processes' commits into :class:`LiveChanges` bumps; ends with no users."""

    def __init__(self, changes: LiveChanges, db: Database) -> None:
        super().__init__(name="earwitness-live-follower", daemon=True)
        self.changes, self.db, self.users = changes, db, 0

    def _in_use(self) -> bool:
        with self.changes._lock:
            if self.users > 0:
                return True
            self.changes._followers.pop(self.db.url, None)  # a new stream starts a new one
            return False

    def run(self) -> None:
        try:
            if self.db.is_sqlite:
                self._poll_sqlite()
            else:
                self._listen_postgres()
        except Exception:  # streams still get their interval_s heartbeat
            _log.exception("live change follower stopped")
            with self.changes._lock:
                self.changes._followers.pop(self.db.url, None)

    def _poll_sqlite(self) -> None:
        raw = self.db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            last = None
            while self._in_use():
                cursor.execute("PRAGMA data_version")  # changes when another connection commits
                row: Any = cursor.fetchone()
                version = row[0]
                if last is not None and version != last:
                    self.changes.bump()
                last = version
                _time.sleep(LiveChanges.SQLITE_POLL_S)
        finally:
            raw.close()

    def _listen_postgres(self) -> None:
        raw = self.db.engine.raw_connection()
        conn: Any = raw.driver_connection  # psycopg's Connection
        raw.detach()  # a long-lived LISTEN connection of its own, not the pool's
        try:
            conn.autocommit = True
            conn.execute(f"LISTEN {LiveChanges.CHANNEL}")
            while self._in_use():
                if any(True for _ in conn.notifies(timeout=0.25)):
                    self.changes.bump()
        finally:
            raw.close()


#: The one counter of this process (the tracker writes, the API's streams wait).
live_changes = LiveChanges()


@dataclass
class SessionWrite:
    """One tracker write that may share a transaction with its neighbours.

    ``apply`` does the work in the given session and returns what to run once that session
    has committed (queueing jobs, counters), or None. It must be repeatable: after a failed
    batch each write is applied again on its own. ``failed`` accounts for a write that
    failed even on its own (its session was rolled back)."""

    apply: Callable[[Session], Callable[[], None] | None]
    failed: Callable[[], None]
    what: str = "tracker write"
    #: Writes with the same key touch the same thing (a call's row).
    key: str | None = None
    #: Builds the one write that does what the given writes of this key (this one last,
    #: in order) would do one after another; None: this write never stands in for others.
    absorb: Callable[[list[SessionWrite]], SessionWrite] | None = None
    #: What ``absorb`` needs of each write (a call save: its events).
    payload: Any = None
    #: Run once per transaction before the writes that name it, with those writes: loads
    #: what they will touch in a few queries instead of a few per write.
    prepare: Callable[[Session, list[SessionWrite]], None] | None = None


def coalesce(writes: list[SessionWrite]) -> list[SessionWrite]:
    """Runs of writes to the same key become one (a call saved after each of its events in
    a burst is saved once, with all those events); anything else keeps its place. A run
    ends at a write of that key that cannot absorb (a folded call's removal)."""
    following: dict[int, int] = {}
    last: dict[str, int] = {}
    for i, write in enumerate(writes):
        if write.key is not None:
            if write.key in last:
                following[last[write.key]] = i
            last[write.key] = i
    out: list[SessionWrite] = []
    runs: dict[str, list[SessionWrite]] = {}
    for i, write in enumerate(writes):
        nxt = following.get(i)
        if write.key is None or write.absorb is None:
            out.append(write)
            continue
        run = runs.setdefault(write.key, [])
        run.append(write)
        if nxt is not None and writes[nxt].absorb is not None:
            continue  # a later write of this key takes this one in
        del runs[write.key]
        out.append(write.absorb(run) if len(run) > 1 else write)
    return out


def commit_writes(db: Database, writes: list[SessionWrite]) -> None:
    """Apply ``writes`` in order in one transaction, then run their after-commit steps.

    When the batch fails, each write is retried in its own transaction (order kept), so one
    bad call cannot lose the others' saves. Live views are told after every commit."""
    if not writes:
        return
    try:
        afters = _commit(db, writes)
    except Exception:
        if len(writes) == 1:
            _log.exception("could not save %s", writes[0].what)
            writes[0].failed()
            return
        _log.warning("batch of %d tracker writes failed; saving one by one", len(writes))
        for write in writes:
            commit_writes(db, [write])
        return
    for after in afters:
        try:
            after()
        except Exception:
            _log.exception("after-commit step failed")


def _commit(db: Database, writes: list[SessionWrite]) -> list[Callable[[], None]]:
    afters: list[Callable[[], None]] = []
    with db.session() as session:
        session.info[ROW_CACHE] = {}
        preparing: dict[Callable[[Session, list[SessionWrite]], None], list[SessionWrite]] = {}
        for write in writes:
            if write.prepare is not None:
                preparing.setdefault(write.prepare, []).append(write)
        for prepare, them in preparing.items():
            prepare(session, them)
        for write in writes:
            after = write.apply(session)
            if after is not None:
                afters.append(after)
        if not db.is_sqlite:  # delivered on commit to every API process (LISTEN)
            session.execute(text(f"NOTIFY {LiveChanges.CHANNEL}"))
    live_changes.bump()
    return afters


class DbWriter:
    """One thread that runs the tracker's database writes in order, off the asyncio loop.

    The AMI loop must keep answering Pings and reading events while the database is slow
    (SQLite waits up to 30 s for a lock; PostgreSQL may be reconnecting): the loop hands
    each write over and goes on. Order is kept, so a call's saves land in the order its
    events came. What queued up while the previous transaction ran is saved in one
    transaction (issue 17: a burst of 50 queue joins used to wait for 50 commits in turn).
    """

    #: Most writes in one transaction (a resync of a big centre stays in bounded pieces).
    MAX_BATCH = 200

    def __init__(self, db: Database | None = None, name: str = "earwitness-ami-writer") -> None:
        self.db = db
        self._items: _queue.Queue[SessionWrite | Callable[[], None] | None] = _queue.Queue()
        self._pending = 0  # queued or being written: what health reports as the backlog
        self._lock = _threading.Lock()
        self._thread = _threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, write: SessionWrite | Callable[[], None]) -> None:
        """Queue a write: a :class:`SessionWrite` (batched; needs ``db``) or a callable that
        runs alone with its own sessions."""
        with self._lock:
            self._pending += 1
        self._items.put(write)

    @property
    def backlog(self) -> int:
        return self._pending

    def close(self, timeout: float = 15.0) -> None:
        """Finish what is queued, then stop."""
        self._items.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            items = [self._items.get()]
            while items[-1] is not None and len(items) < self.MAX_BATCH:
                try:
                    items.append(self._items.get_nowait())
                except _queue.Empty:
                    break
            group: list[SessionWrite] = []
            for item in items:
                if isinstance(item, SessionWrite):
                    group.append(item)
                    continue
                self._flush(group)
                group = []
                if item is None:
                    return
                self._call(item)
            self._flush(group)

    def _flush(self, group: list[SessionWrite]) -> None:
        if not group:
            return
        assert self.db is not None, "batched writes need the writer's database"
        try:
            commit_writes(self.db, coalesce(group))
        except Exception:  # commit_writes logs per write; the thread must survive anyway
            _log.exception("tracker writes failed")
        self._done(len(group))

    def _call(self, write: Callable[[], None]) -> None:
        try:
            write()
            live_changes.bump()
        except Exception:  # each write logs its own failure; the thread must survive
            _log.exception("tracker write failed")
        self._done(1)

    def _done(self, n: int) -> None:
        with self._lock:
            self._pending -= n
