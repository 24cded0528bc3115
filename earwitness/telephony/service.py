"""The live PBX link: AMI client → call tracker → database, in a thread of its own.

It owns an asyncio loop so the blocking parts of earwitness (SQLAlchemy, the job
worker) stay synchronous. Each event is saved before the next is handled, so what
the API shows never runs ahead of what is stored. After every (re)connect the
tracker is resynchronised from the PBX (and from queue_log when this host can read
it), which is how calls that began or ended while the link was down are neither
lost nor counted twice.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from earwitness.config import Settings
from earwitness.db import Database
from earwitness.models import Call, QueueLogCursor, Recording
from earwitness.telephony.agents import AgentBoard, AgentState
from earwitness.telephony.ami import AmiClient, AmiMessage
from earwitness.telephony.ami.protocol import event_time
from earwitness.telephony.ami.state import AmiState
from earwitness.telephony.calls import Attempt, EventNote, QueueVisit, TrackedCall, Transfer
from earwitness.telephony.live_view import shows
from earwitness.telephony.persist import (
    DbWriter,
    SessionWrite,
    SlaDefaults,
    apply_record,
    commit_writes,
    delete_tracked,
    live_changes,
    load_tracked,
    save_agent_state,
    save_tracked,
)
from earwitness.telephony.queue_log import (
    LogPosition,
    line_epoch,
    parse_queue_log,
    read_since,
)
from earwitness.telephony.records import CallOutcome, CallRecord
from earwitness.telephony.rings import Cadence
from earwitness.telephony.tracker import CallTracker

log = logging.getLogger(__name__)

Submit = Callable[..., int]
RECORDING_SUBDIR = "earwitness"
NO_RECORDING_DIR = (
    "EARWITNESS_AMI_RECORDING_DIR is not set: calls are recorded on the PBX host but "
    "earwitness cannot read the files there, so recordings are not ingested. Mount the "
    "PBX's monitor directory here and set EARWITNESS_AMI_RECORDING_DIR to its path."
)


class PbxService:
    """Start/stop/health for the runtime; everything else happens on its loop."""

    def __init__(self, settings: Settings, db: Database, submit: Submit | None = None) -> None:
        if not settings.ami_host or not settings.ami_user or settings.ami_secret is None:
            raise ValueError("AMI host, user and secret are all required")
        Cadence.for_country(settings.sla_cadence)  # fail at start, not at the first call
        self.settings = settings
        self.db = db
        self.submit = submit
        self.defaults = SlaDefaults(settings.sla_rings, settings.sla_cadence)
        self.tracker = CallTracker()
        self.board = AgentBoard()
        self.client: AmiClient | None = None
        self.recording: dict[str, str] = {}  # linkedid -> file name relative to monitor dir
        # Receipt time of the last event: after a drop, the gap began no earlier than this.
        self.last_seen: datetime | None = None
        self.resyncs = 0
        self.queue_log_bytes_read = 0  # what backfills cost: the gaps, not the whole log
        self.saved = 0
        self.errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writer: DbWriter | None = None  # database writes, off the loop
        # The wallboard's calls (issue 17): linkedid -> the snapshot last handed to the
        # writer. Replaced, never changed in place, so API threads read it without a lock;
        # None until hydrated (until then the database is the only complete view).
        self._live: dict[str, TrackedCall] | None = None

    # -- Service protocol ------------------------------------------------------------
    def start(self) -> None:
        notice = self.recording_notice()
        if notice is not None:
            log.warning(notice)  # once, at start; /api/health repeats it
        self._writer = DbWriter(self.db)
        self._thread = threading.Thread(target=self._run_thread, name="earwitness-ami", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)
        if self._writer is not None:
            self._writer.close()

    def live_calls(self) -> list[TrackedCall] | None:
        """Calls in progress as the tracker knows them now, ahead of the writer (read-only
        snapshots); None before the service has taken over the calls left in progress."""
        live = self._live
        return None if live is None else list(live.values())

    def _publish(self, call: TrackedCall) -> None:
        """On the loop: the call's newest snapshot replaces the old one on the wallboard
        (or leaves it), and live views are woken without waiting for the commit."""
        live = dict(self._live or {})
        if shows(call):
            live[call.linkedid] = call
        elif live.pop(call.linkedid, None) is None:
            return  # never shown, still not shown: nothing to wake anyone for
        self._live = live
        live_changes.bump(committed=False)

    def recording_notice(self) -> str | None:
        """Why recordings will not reach earwitness, when that is knowable at start."""
        if self.settings.ami_record_calls and self.settings.ami_recording_dir is None:
            return NO_RECORDING_DIR
        return None

    def health(self) -> dict[str, Any]:
        client = self.client
        state = client.state if client is not None else AmiState.DISCONNECTED
        return {
            "ok": state == AmiState.CONNECTED,
            "configured": True,
            "host": f"{self.settings.ami_host}:{self.settings.ami_port}",
            # list(): one C-level copy, as the loop thread may add a call meanwhile
            "calls_tracked": sum(1 for c in list(self.tracker.calls.values()) if c.is_call),
            "resyncs": self.resyncs,
            "queue_log_bytes_read": self.queue_log_bytes_read,
            "saved": self.saved,
            "errors": self.errors,
            "write_backlog": self._writer.backlog if self._writer is not None else 0,
            "recording": {
                "enabled": self.settings.ami_record_calls,
                "dir": str(self.settings.ami_recording_dir)
                if self.settings.ami_recording_dir is not None
                else None,
                "ingest": self.settings.ami_record_calls
                and self.settings.ami_recording_dir is not None,
                "notice": self.recording_notice(),
            },
            **(client.health() if client is not None else {"state": str(state)}),
        }

    # -- the loop --------------------------------------------------------------------
    def _run_thread(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._hydrate()
        secret = self.settings.ami_secret
        assert secret is not None and self.settings.ami_host and self.settings.ami_user
        self.client = AmiClient(
            self.settings.ami_host,
            self.settings.ami_port,
            self.settings.ami_user,
            secret.get_secret_value(),
            ping_interval=self.settings.ami_ping_interval_s,
            on_connected=self._resync,
            auth=self.settings.ami_auth,
            tls=ami_tls_context(self.settings),
            server_hostname=self.settings.ami_tls_server_name,
        )
        self.client.on_event(self._on_event)
        self._ready.set()
        task = self.client.start()
        await self._stop.wait()
        await self.client.close()
        task.cancel()

    def _hydrate(self) -> None:
        """Take over calls a previous process left in progress, so resync can close them."""
        with self.db.session() as session:
            rows = session.scalars(
                select(Call).where(Call.source == "ami", Call.outcome == "in_progress")
            ).all()
            self.last_seen = session.scalar(
                select(func.max(Call.updated_at)).where(Call.source == "ami")
            )
            for row in rows:
                self.tracker.calls[row.linkedid] = TrackedCall(
                    row.linkedid,
                    kind=row.kind,
                    caller=row.caller,
                    caller_uniqueid=row.caller_uniqueid,
                    queue=row.queue.name if row.queue else None,
                    agent=row.agent.interface if row.agent else None,
                    entered_at=row.entered_at,
                    answered_at=row.answered_at,
                    time_source="event" if row.time_source == "event" else "receipt",
                    # kept, so re-saving the call after the restart does not drop them
                    # (nor its ring-outs from the SLA; names stay the rows' own)
                    attempts=[
                        Attempt(a.agent.interface, None, a.rang_at, a.ended_at, a.result)
                        for a in row.attempts
                    ],
                    visits=[
                        QueueVisit(v.queue.name, v.joined_at, v.left_at, v.result)
                        for v in row.visits
                    ],
                    transfers=[
                        Transfer(
                            t.kind,
                            t.at,
                            t.transferer,
                            t.target,
                            t.result,
                            t.answered_at,
                            t.answered_by,
                        )
                        for t in row.transfers
                    ],  # fmt: skip
                )
                if row.answered_at is not None and self.settings.ami_record_calls:
                    # The previous leader started MixMonitor on answer, under this very name:
                    # expect its file at hang-up instead of recording the call a second time.
                    self.recording.setdefault(
                        row.linkedid, f"{RECORDING_SUBDIR}/{_safe(row.linkedid)}.wav"
                    )
        calls = self.tracker.calls.values()
        self._live = {c.linkedid: _snapshot(c) for c in calls if shows(c)}

    async def _on_event(self, message: AmiMessage) -> None:
        self.last_seen = datetime.fromtimestamp(message.received_at, UTC)
        if self.board.wants(message.name):
            self._save_agents(self.board.handle(message, event_time(message)[0]))
            return
        if not self.tracker.wants(message.name):
            return
        at, source = event_time(message)
        try:
            changed = self.tracker.handle(message, at, source)
        except Exception:  # one odd event must not stop the tracking of all others
            self.errors += 1
            log.exception("tracker failed on %s event", message.name)
            return
        for call in changed:
            if (
                message.name in ("AgentConnect", "DialEnd")
                and call.answered_at is not None
                and call.linkedid not in self.recording
                and self.settings.ami_record_calls
            ):
                await self._start_recording(call, message)
            self._save(call)

    def _write(self, func: Callable[..., None], *args: Any) -> None:
        """Hand a database write to the writer thread (inline when the service isn't
        started, e.g. in tests that drive it directly)."""
        if self._writer is None:
            func(*args)
            live_changes.bump()
        else:
            self._writer.put(lambda: func(*args))

    def _write_batched(self, write: SessionWrite) -> None:
        """Like :meth:`_write`, for a write that may share a transaction with others."""
        if self._writer is None:
            commit_writes(self.db, [write])
        else:
            self._writer.put(write)

    def _save(self, call: TrackedCall) -> None:
        """Queue the call's save (a snapshot: the loop goes on changing the live object) and
        drop a finished call from the tracker at once, as if the save were done."""
        snapshot = _snapshot(call)
        # The snapshot carries the events noted since the last save; the live call starts
        # afresh, or every later save would store those events again.
        call.notes = []
        self._publish(snapshot)
        self._write_batched(self._call_write(snapshot))
        if call.merged_into is None and call.ended_at is not None:
            self.tracker.release(call)

    def _failed(self) -> None:
        self.errors += 1

    def _save_agents(self, changes: list[AgentState]) -> None:
        if not changes:
            return

        def apply(session: Session) -> None:
            for state in changes:
                save_agent_state(session, state)

        self._write_batched(SessionWrite(apply, self._failed, "agent states"))

    def _call_write(self, call: TrackedCall, notes: list[EventNote] | None = None) -> SessionWrite:
        """The save of one call snapshot (or the removal of a folded consultation) as a
        write the writer may batch; repeatable, as a failed batch is retried write by write.
        ``notes``: the events to store with it (default: the snapshot's own)."""
        key = f"call:{call.linkedid}"
        if call.merged_into is not None:  # an attended transfer's consultation, folded
            return SessionWrite(
                lambda session: (delete_tracked(session, call.linkedid), None)[1],
                self._failed,
                f"removal of folded call {call.linkedid}",
                key=key,
            )
        kept = list(call.notes if notes is None else notes)  # save_tracked empties the list

        def apply(session: Session) -> Callable[[], None]:
            call.notes = list(kept)
            save_tracked(session, call, self.defaults)
            recording_id: int | None = None
            name = self.recording.get(call.linkedid) if call.ended_at is not None else None
            if name is not None:
                recording_id = self._expect_recording(session, call.linkedid, name)
            return lambda: self._saved(call.linkedid, recording_id)

        def absorb(run: list[SessionWrite]) -> SessionWrite:
            """Saves of this call queued together: the last snapshot with every event."""
            events = [n for w in run for n in w.payload]
            return self._call_write(call, events)

        return SessionWrite(
            apply,
            self._failed,
            f"call {call.linkedid}",
            key=key,
            absorb=absorb,
            payload=kept,
            prepare=_load_calls,
        )

    def _saved(self, linkedid: str, recording_id: int | None) -> None:
        """After the call's transaction committed: count it, and queue its recording's
        ingest (one writer at a time on SQLite). Without a readable recording dir the job
        could only fail with "not found"."""
        self.saved += 1
        if recording_id is None:
            return
        self.recording.pop(linkedid, None)
        ingest = self.settings.ami_recording_dir is not None
        if self.submit is not None and ingest:
            self.submit(
                "recording.ingest",
                {"recording_id": recording_id, "expected_channels": 2},
                idempotency_key=f"recording.ingest:{recording_id}",
            )

    async def _start_recording(self, call: TrackedCall, message: AmiMessage) -> None:
        """MixMonitor in stereo (option D): channel 0 the caller, channel 1 the agent."""
        channel = message.get("Channel")
        if not channel or self.client is None:
            return
        name = f"{RECORDING_SUBDIR}/{_safe(call.linkedid)}.wav"
        try:
            await self.client.send("MixMonitor", Channel=channel, File=name, Options="D")
            self.recording[call.linkedid] = name
        except Exception as exc:
            self.errors += 1
            log.warning("MixMonitor on %s failed: %s", channel, exc)

    def _expect_recording(self, session: Session, linkedid: str, name: str) -> int:
        base = self.settings.ami_recording_dir
        path = (base / name) if base is not None else Path(name)
        call_id = session.scalar(
            select(Call.id).where(Call.source == "ami", Call.linkedid == linkedid)
        )
        recording = Recording(
            call_id=call_id, state="expected", source_path=str(path), error=self.recording_notice()
        )
        session.add(recording)
        session.flush()
        return recording.id

    async def _resync(self, client: AmiClient) -> None:
        now = datetime.now(UTC)
        channels = await client.send_list("CoreShowChannels")
        status = await client.send_list("QueueStatus")
        entries = [m.as_dict() for m in status if m.name.lower() == "queueentry"]
        members = [m.as_dict() for m in status if m.name.lower() == "queuemember"]
        self._save_agents(self.board.resync(members, now))
        changed = self.tracker.resync([m.as_dict() for m in channels], entries, now)
        for call in changed:
            self._save(call)
        left_queue = _left_queue_in_gap(self.tracker.calls.values(), entries)
        if left_queue:
            bridged = {u for m in channels if m.get("BridgeId") and (u := m.get("Uniqueid"))}
            await self._answer_from_queue_log(left_queue, bridged, now)
        if self.last_seen is not None:
            live = frozenset(u for m in channels if (u := m.get("Uniqueid")))
            self._write(self._backfill_from_queue_log, self.last_seen, live)
        self.resyncs += 1
        log.info(
            "AMI resync: %d live channels, %d waiting, %d calls reconciled",
            len(channels),
            len(entries),
            len(changed),
        )

    async def _answer_from_queue_log(
        self, calls: list[TrackedCall], bridged: set[str], now: datetime
    ) -> None:
        """Known calls that were waiting when the link dropped and have left the queue: those
        answered in the gap get the answer time and agent of queue_log's CONNECT when this
        host can read it (shifted onto the tracker's precise entry), else, when the caller
        is bridged now, "some time before now", as calls adopted at resync. Without this
        they would end as abandoned, having no answer."""
        records: dict[str, CallRecord] = {}
        path = self.settings.ami_queue_log_path
        if path is not None and self.last_seen is not None:
            since = (self.last_seen - timedelta(seconds=120)).timestamp()
            try:
                tail = await asyncio.to_thread(read_since, path, since, None)
            except OSError as exc:
                log.warning("queue_log %s unreadable at resync: %s", path, exc)
            else:
                imported = parse_queue_log(tail.lines)
                records = {r.key.split("#")[0]: r for r in imported.calls}
        for call in calls:
            record = records.get(call.caller_uniqueid or "")
            if record is not None and record.answered_at is not None and call.entered_at:
                call.answered_at = call.entered_at + (record.answered_at - record.entered_at)
                call.agent = record.agent or call.agent
            elif call.caller_uniqueid in bridged:
                call.answered_at = now
            else:  # left the queue unanswered (e.g. timed out into the dialplan): not ours
                continue
            call._weaken("resync")
            self._save(call)
            log.info("call %s was answered while the AMI link was down", call.linkedid)

    def _backfill_from_queue_log(
        self, gap_start: datetime, live: frozenset[str] | None = None
    ) -> None:
        """Queue calls that began and ended inside the gap exist only in queue_log.

        With ``live`` (the uniqueids of the PBX's channels at resync), a call the log shows
        unfinished whose channel is gone ended unseen too: the PBX was restarted (kill -9
        writes no end event) while the link was down. It is kept as the tracker keeps such
        calls, answered or not by what the log says, its end marked ``resync``.
        """
        path = self.settings.ami_queue_log_path
        if path is None or not path.is_file():
            return
        since = gap_start - timedelta(seconds=120)
        key = str(path.resolve())
        with self.db.session() as session:  # where the previous read stopped (issue 19)
            cursor = session.get(QueueLogCursor, key)
            last = (
                LogPosition(cursor.inode, cursor.size, cursor.read_offset)
                if cursor is not None
                else None
            )
        try:
            tail = read_since(path, since.timestamp(), last)
        except OSError as exc:
            log.warning("queue_log %s unreadable, no backfill: %s", path, exc)
            return
        self.queue_log_bytes_read += tail.bytes_read
        imported = parse_queue_log(tail.lines)
        restarted = _last_queuestart(tail.lines)
        with self.db.session() as session:
            cursor = session.get(QueueLogCursor, key) or QueueLogCursor(path=key)
            cursor.inode, cursor.size = tail.position.inode, tail.position.size
            cursor.read_offset = tail.position.offset
            session.add(cursor)
        with self.db.session() as session:
            for record in imported.calls:
                # Anything finished that we do not know by its callid was missed; the 120 s
                # margin covers queue_log's whole-second times and events lost just before.
                outcome, ended_at = record.outcome, record.ended_at
                if outcome is CallOutcome.IN_PROGRESS:
                    # cut off only if Asterisk started again after it (QUEUESTART): a call
                    # the new process began just now is not live in a list taken before it
                    if live is None or record.key.split("#")[0] in live:
                        continue
                    if restarted is None or record.entered_at.timestamp() >= restarted:
                        continue
                    outcome = CallOutcome.ANSWERED if record.answered_at else CallOutcome.ABANDONED
                    ended_at = record.answered_at or record.entered_at
                known = session.scalar(
                    select(Call).where(Call.caller_uniqueid == record.key.split("#")[0])
                )
                if known is not None:  # the log's account (a cut call: as converted above)
                    effective = replace(record, outcome=outcome, ended_at=ended_at)
                    self._correct_from_log(session, known, effective)
                    continue
                call = TrackedCall(
                    record.key,
                    kind="queue",
                    caller=record.caller,
                    caller_uniqueid=record.key.split("#")[0],
                    queue=record.queue,
                    agent=record.agent,
                    entered_at=record.entered_at,
                    answered_at=record.answered_at,
                    ended_at=ended_at,
                    outcome=outcome,
                    transferred_to=record.transferred_to,
                    time_source="resync",
                )
                save_tracked(session, call, self.defaults)
                log.info("backfilled call %s from queue_log (ended during AMI gap)", record.key)

    def _correct_from_log(self, session: Session, row: Call, record: CallRecord) -> None:
        """A call the tracker closed unseen (``resync``: waiting when the link dropped) gets
        the ending Asterisk logged, e.g. answered in the gap rather than abandoned. Times
        keep the tracker's precise entry: the log's whole seconds are shifted onto it."""
        if row.time_source != "resync" or record.outcome is CallOutcome.IN_PROGRESS:
            return
        if record.outcome.value == row.outcome:
            return
        shift = row.entered_at - record.entered_at
        fixed = replace(
            record,
            entered_at=row.entered_at,
            answered_at=record.answered_at + shift if record.answered_at else None,
            ended_at=record.ended_at + shift if record.ended_at else None,
        )
        apply_record(session, row, fixed, self.defaults)
        log.info("call %s corrected from queue_log: %s", record.key, record.outcome.value)


def _snapshot(call: TrackedCall) -> TrackedCall:
    """A copy the loop may go on changing the original of: the call's own fields, and a
    copy of each of its collections and their items (flat records of immutable values).
    ``copy.deepcopy`` did the same at several times the cost, on the loop, per event."""
    snapshot = copy.copy(call)
    for field in dataclasses.fields(call):
        value = getattr(call, field.name)
        if isinstance(value, list):
            setattr(snapshot, field.name, [copy.copy(item) for item in value])
        elif isinstance(value, set | dict):
            setattr(snapshot, field.name, copy.copy(value))
    return snapshot


def _load_calls(session: Session, writes: list[SessionWrite]) -> None:
    """Before a batch of call saves: their rows and collections in a few queries."""
    load_tracked(session, (w.key.removeprefix("call:") for w in writes if w.key))


def _last_queuestart(lines: list[bytes]) -> float | None:
    """Epoch of the last QUEUESTART line (app_queue writes one when Asterisk starts)."""
    last = None
    for line in lines:
        parts = line.split(b"|", 5)
        if len(parts) >= 5 and parts[4].strip() == b"QUEUESTART":
            last = line_epoch(line)
    return last


def _left_queue_in_gap(
    calls: Iterable[TrackedCall], entries: list[dict[str, str]]
) -> list[TrackedCall]:
    """Live tracked queue calls without an answer that no queue lists as waiting any more:
    something happened to them while the link was down (answered, often)."""
    waiting = {e.get("Uniqueid") for e in entries}
    return [
        call
        for call in calls
        if call.kind == "queue"
        and call.answered_at is None
        and call.ended_at is None
        and call.channels
        and call.caller_uniqueid is not None
        and call.caller_uniqueid not in waiting
    ]


def _safe(value: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in value)


def ami_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS to AMI when configured: verified against the given CA (or the PBX's self-signed
    certificate itself), else the system's trust store; never unverified."""
    if not settings.ami_tls:
        return None
    ca = settings.ami_tls_ca_path
    return ssl.create_default_context(cafile=str(ca) if ca is not None else None)
