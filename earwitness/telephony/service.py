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
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from earwitness.config import Settings
from earwitness.db import Database
from earwitness.models import Call, Recording
from earwitness.telephony.agents import AgentBoard, AgentState
from earwitness.telephony.ami import AmiClient, AmiMessage
from earwitness.telephony.ami.protocol import event_time
from earwitness.telephony.ami.state import AmiState
from earwitness.telephony.calls import QueueVisit, TrackedCall, Transfer
from earwitness.telephony.persist import (
    SlaDefaults,
    delete_tracked,
    save_agent_state,
    save_tracked,
)
from earwitness.telephony.queue_log import parse_queue_log
from earwitness.telephony.records import CallOutcome
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
        self.saved = 0
        self.errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- Service protocol ------------------------------------------------------------
    def start(self) -> None:
        notice = self.recording_notice()
        if notice is not None:
            log.warning(notice)  # once, at start; /api/health repeats it
        self._thread = threading.Thread(target=self._run_thread, name="earwitness-ami", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)

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
            "calls_tracked": sum(1 for c in self.tracker.calls.values() if c.is_call),
            "resyncs": self.resyncs,
            "saved": self.saved,
            "errors": self.errors,
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

    def _save_agents(self, changes: list[AgentState]) -> None:
        if not changes:
            return
        try:
            with self.db.session() as session:
                for state in changes:
                    save_agent_state(session, state)
        except Exception:
            self.errors += 1
            log.exception("could not save agent states")

    def _save(self, call: TrackedCall) -> None:
        recording_id: int | None = None
        if call.merged_into is not None:  # an attended transfer's consultation, folded
            try:
                with self.db.session() as session:
                    delete_tracked(session, call.linkedid)
            except Exception:
                self.errors += 1
                log.exception("could not remove folded call %s", call.linkedid)
            return
        try:
            with self.db.session() as session:
                save_tracked(session, call, self.defaults)
                finished = call.ended_at is not None
                if finished and call.linkedid in self.recording:
                    recording_id = self._expect_recording(
                        session, call.linkedid, self.recording.pop(call.linkedid)
                    )
            self.saved += 1
        except Exception:
            self.errors += 1
            log.exception("could not save call %s", call.linkedid)
            return
        # Queued only after the call's transaction committed: one writer at a time on SQLite.
        # Without a readable recording dir the job could only fail with "not found".
        ingest = self.settings.ami_recording_dir is not None
        if recording_id is not None and self.submit is not None and ingest:
            self.submit(
                "recording.ingest",
                {"recording_id": recording_id, "expected_channels": 2},
                idempotency_key=f"recording.ingest:{recording_id}",
            )
        if finished:
            self.tracker.release(call)

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
        if self.last_seen is not None:
            self._backfill_from_queue_log(self.last_seen)
        self.resyncs += 1
        log.info(
            "AMI resync: %d live channels, %d waiting, %d calls reconciled",
            len(channels),
            len(entries),
            len(changed),
        )

    def _backfill_from_queue_log(self, gap_start: datetime) -> None:
        """Queue calls that began and ended inside the gap exist only in queue_log."""
        path = self.settings.ami_queue_log_path
        if path is None or not path.is_file():
            return
        since = gap_start - timedelta(seconds=120)
        with path.open("rb") as f:
            lines = [ln for ln in f if _epoch_of(ln) >= since.timestamp()]
        imported = parse_queue_log(lines)
        with self.db.session() as session:
            for record in imported.calls:
                # Anything finished that we do not know by its callid was missed; the 120 s
                # margin covers queue_log's whole-second times and events lost just before.
                if record.outcome is CallOutcome.IN_PROGRESS:
                    continue
                known = session.scalar(
                    select(Call.id).where(Call.caller_uniqueid == record.key.split("#")[0])
                )
                if known is not None:
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
                    ended_at=record.ended_at,
                    outcome=record.outcome,
                    transferred_to=record.transferred_to,
                    time_source="resync",
                )
                save_tracked(session, call, self.defaults)
                log.info("backfilled call %s from queue_log (ended during AMI gap)", record.key)


def _safe(value: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in value)


def _epoch_of(line: bytes) -> float:
    head = line.split(b"|", 1)[0]
    try:
        return float(head)
    except ValueError:
        return 0.0
