"""Load the demo data set: the seed-000 road-rescue complaint, end to end, without a PBX.

Three calls are synthesised (espeak-ng + sox), filed as calls with their ring
waits, ingested as stereo recordings, attached with the rescue truck's GPX track
as evidence to one case, and handed to whatever pipeline stages are installed
(transcription when its job kind is registered). Loading twice does nothing the
second time.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from sqlalchemy import func, select

from earwitness.demo.history import load_history
from earwitness.demo.script import DEMO_CALLS, INCIDENT, CallScript
from earwitness.jobs.registry import get_handler, load_handler_modules
from earwitness.models import Call, CallEvent, Case, Job, case_calls
from earwitness.runtime import Runtime
from earwitness.telephony.persist import SlaDefaults, apply_record
from earwitness.telephony.records import CallOutcome, CallRecord
from earwitness.timezones import zone_named

DEMO_SOURCE = "demo"
CASE_NUMBER = "CASE-DEMO-000"


def demo_wanted(runtime: Runtime) -> bool:
    """auto: only into an empty database without a PBX; always/never: as configured."""
    mode = runtime.settings.demo
    if mode != "auto":
        return mode == "always"
    if runtime.settings.ami_enabled:
        return False
    with runtime.db.session() as session:
        return not session.scalar(select(func.count()).select_from(Call))


def _record(script: CallScript, now: datetime, duration_s: float) -> CallRecord:
    answered = script.answered_at(now)
    return CallRecord(
        key=script.call_id,
        caller=script.caller_number,
        queue=script.queue,
        agent=f"Local/{script.agent_name}@demo",
        entered_at=script.started_at(now),
        answered_at=answered,
        ended_at=answered + timedelta(seconds=duration_s),
        outcome=CallOutcome.ANSWERED,
    )


def _call_events(record: CallRecord, script: CallScript) -> list[CallEvent]:
    assert record.answered_at is not None and record.ended_at is not None
    return [
        CallEvent(at=record.entered_at, time_source="event", name="QueueCallerJoin",
                  data={"Queue": script.queue, "CallerIDNum": script.caller_number}),
        CallEvent(at=record.answered_at, time_source="event", name="AgentConnect",
                  data={"MemberName": script.agent_name,
                        "HoldTime": str(round(script.ring_wait_s))}),
        CallEvent(at=record.ended_at, time_source="event", name="Hangup", data={}),
    ]  # fmt: skip


def load_demo(runtime: Runtime, console: Console | None = None, wait: bool = False) -> str:
    """Build the demo data; returns a one-line summary."""
    from earwitness.demo.synth import check_tools, synthesize_demo
    from earwitness.demo.track import build_track
    from earwitness.evidence.intake import IntakeRequest
    from earwitness.evidence.track_store import file_track
    from earwitness.evidence.tracks import AnalysisParams, ParseOptions
    from earwitness.evidence.tracks.analysis import Place
    from earwitness.recordings.intake import ingest_file

    console = console or Console(stderr=True)
    with runtime.db.session() as session:
        if session.scalar(select(func.count()).select_from(Call).where(Call.source == DEMO_SOURCE)):
            return "demo data already loaded"
    check_tools()
    now = datetime.now(UTC).replace(microsecond=0)
    defaults = SlaDefaults(runtime.settings.sla_rings, runtime.settings.sla_cadence)
    recording_ids: list[int] = []
    with tempfile.TemporaryDirectory(prefix="earwitness-demo-") as tmp:
        with console.status("synthesising demo calls (espeak-ng + sox)…"):
            audio = {s.call_id: s for s in synthesize_demo(Path(tmp))}
        track = build_track(now + timedelta(seconds=INCIDENT.dispatched_offset_s))
        with runtime.db.session() as session:
            case = Case(
                number=CASE_NUMBER,
                complainant_phone=DEMO_CALLS[0].caller_number,
                complainant_name=INCIDENT.customer,
                category="late_arrival",
                root_cause="product_system",
                urgency="A",
                tier=2,
                status="investigating",
                owner=DEMO_CALLS[0].agent_name,
                summary=(
                    f"Rescue truck for {INCIDENT.plate} ({INCIDENT.work_order}) arrived "
                    f"{INCIDENT.delay_minutes} min late at {INCIDENT.place}; refuelling stop "
                    "and wrong dispatch direction suspected."
                ),
                facts={
                    "plate": INCIDENT.plate,
                    "work_order": INCIDENT.work_order,
                    "place": INCIDENT.place,
                    "driver": INCIDENT.driver,
                    "delay_minutes": INCIDENT.delay_minutes,
                    "demand": INCIDENT.demand,
                },
                opened_at=DEMO_CALLS[0].answered_at(now),
            )
            session.add(case)
            session.flush()
            for script in DEMO_CALLS:
                synth = audio[script.call_id]
                record = _record(script, now, synth.duration_s)
                call = Call(source=DEMO_SOURCE, linkedid=script.call_id, kind="queue",
                            entered_at=record.entered_at)  # fmt: skip
                session.add(call)
                apply_record(session, call, record, defaults, script.agent_name)
                call.events = _call_events(record, script)
                session.flush()
                session.execute(case_calls.insert().values(case_id=case.id, call_id=call.id))
                recording = ingest_file(
                    session,
                    runtime.blobs,
                    synth.path,
                    call_id=call.id,
                    case_id=case.id,
                    original_name=f"{script.call_id}.wav",
                )
                recording_ids.append(recording.id)
            truth = track.truth
            _, track_row = file_track(
                session,
                runtime.blobs,
                IntakeRequest(case.id, "rescue-truck-track.gpx", "demo", source="demo platform"),
                track.gpx_xml.encode(),
                options=ParseOptions(),
                params=AnalysisParams(
                    destination=Place("customer", *truth.incident),
                    promised_at=truth.promised_arrival,
                    dispatched_at=truth.dispatched_at,
                    places=(Place("petrol station", *truth.petrol_station),),
                ),
            )
            verdict = "; ".join(track_row.analysis.get("verdict", []) or [])
            # a week of queue traffic (no audio) so the wallboard and reports have a past
            history = load_history(session, defaults, now, zone_named(runtime.settings.timezone))
    jobs = _run_pipeline(runtime, recording_ids)
    if wait and jobs:
        _wait_for_jobs(runtime, jobs, console)
    return (
        f"demo: {len(DEMO_CALLS)} calls, {len(recording_ids)} stereo recordings, case "
        f"{CASE_NUMBER} with the GPX track ({verdict or 'analysed'}); {history} calls of "
        "demo history over the last 7 days; "
        f"{len(jobs)} pipeline job(s) queued"
    )


def _run_pipeline(runtime: Runtime, recording_ids: list[int]) -> list[int]:
    load_handler_modules(runtime.settings.job_modules)
    if get_handler("transcribe") is None:
        return []
    return [
        runtime.submit(
            "transcribe", {"recording_id": rid}, idempotency_key=f"demo-transcribe:{rid}"
        )
        for rid in recording_ids
    ]


def _wait_for_jobs(runtime: Runtime, job_ids: list[int], console: Console) -> dict[str, Any]:
    """Show one progress bar per job until all are finished, or give up after an hour."""
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        console=console,
    )  # fmt: skip
    tasks = {jid: progress.add_task(f"job {jid}", total=100) for jid in job_ids}
    states: dict[str, Any] = {}
    deadline = time.monotonic() + 3600
    with progress:
        while time.monotonic() < deadline:
            with runtime.db.session() as session:
                rows = session.scalars(select(Job).where(Job.id.in_(job_ids))).all()
                for row in rows:
                    progress.update(tasks[row.id], completed=row.progress,
                                    description=f"{row.kind} {row.id}: {row.state}")  # fmt: skip
                    states[str(row.id)] = row.state
            if all(s in ("succeeded", "failed", "cancelled") for s in states.values()):
                return states
            time.sleep(0.5)  # polling interval of the progress display
    console.print("[yellow]demo jobs still running after an hour; see /api/jobs[/]")
    return states
