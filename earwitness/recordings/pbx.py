"""Pick up the stereo file MixMonitor wrote for a call, once the call has hung up.

The tracker creates an ``expected`` recording row at hang-up and queues this job.
The file may not be there yet (MixMonitor flushes after the channel is gone), may
still be growing, may be empty, or may never come: each is a state on the row
(``recording``, ``missing``, ``empty``) instead of a crash. The job waits by time,
not by attempt count: it looks again every few seconds, without using up attempts,
until ``recording_wait_minutes`` after hang-up, and then marks the recording
``missing`` with the reason.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from earwitness.errors import BadInput, NotFound
from earwitness.jobs.registry import JobContext, NotYet, job_handler
from earwitness.models import Recording, utcnow
from earwitness.recordings.intake import ingest_file

FileState = Literal["missing", "empty", "writing", "ready"]
#: A file modified this recently may still be written by MixMonitor.
SETTLE_S = 1.5
#: How often a file that is absent or growing is looked at again.
RECHECK_S = 2.0


class IngestPayload(BaseModel):
    recording_id: int = Field(ge=1)
    expected_channels: int = Field(default=2, ge=1, le=8)


def file_state(size: int | None, mtime: float | None, now: float) -> FileState:
    """Classify a recording file from its stat (None = absent); pure for testing."""
    if size is None or mtime is None:
        return "missing"
    if now - mtime < SETTLE_S:
        return "writing"
    return "empty" if size == 0 else "ready"


def _stat(path: Path) -> tuple[int | None, float | None]:
    try:
        st = path.stat()
    except OSError:
        return None, None
    return st.st_size, st.st_mtime


def _set_state(ctx: JobContext, rid: int, state: str, error: str | None) -> None:
    with ctx.env.db.session() as session:
        row = session.get(Recording, rid)
        if row is not None:
            row.state, row.error = state, error


@job_handler("recording.ingest", max_attempts=3, backoff_s=1.0, payload=IngestPayload)
def ingest_pbx_recording(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    rid = int(payload["recording_id"])
    with ctx.env.db.session() as session:
        row = session.get(Recording, rid)
        if row is None:
            raise NotFound(f"recording {rid} does not exist")
        if row.state == "ingested":
            return {"recording_id": rid, "state": "ingested", "sha256": row.sha256}
        path = Path(row.source_path or "")
        # The row is created at hang-up; that is when the wait starts.
        give_up_at = row.created_at + timedelta(minutes=ctx.env.settings.recording_wait_minutes)
    state = file_state(*_stat(path), time.time())
    if state in ("missing", "writing"):
        label = "missing" if state == "missing" else "recording"
        why = f"{path} not found" if state == "missing" else f"{path} is still being written"
        if utcnow() >= give_up_at:
            minutes = ctx.env.settings.recording_wait_minutes
            reason = f"{why} {minutes:g} min after hang-up; gave up waiting"
            _set_state(ctx, rid, "missing", reason)
            raise BadInput(reason)  # the job fails with the reason; no further attempt
        _set_state(ctx, rid, label, None)
        raise NotYet(why, RECHECK_S)
    if state == "empty":
        _set_state(ctx, rid, "empty", f"{path} is empty (0 bytes): nothing was recorded")
        return {"recording_id": rid, "state": "empty"}
    ctx.progress(20, "ingesting")
    try:
        with ctx.env.db.session() as session:
            row = session.get(Recording, rid)
            assert row is not None
            stored = ingest_file(
                session,
                ctx.env.blobs,
                path,
                call_id=row.call_id,
                case_id=row.case_id,
                expected_channels=int(payload.get("expected_channels") or 2),
                source_path=str(path),
                into=row,  # fills our row, so its evidence row points at this recording id
                actor="pbx",
                origin="pbx",
            )
            if stored.id != row.id:  # the very same bytes were ingested before
                row.state, row.sha256 = "duplicate", stored.sha256
                row.error = f"same audio as recording {stored.id}"
            sha = row.sha256
    except BadInput as exc:
        _set_state(ctx, rid, "failed", exc.detail[:500])
        raise
    ctx.progress(90, "queueing transcription")
    from earwitness.jobs.registry import get_handler

    job = None
    if get_handler("transcribe") is not None:
        job = ctx.env.submit(
            "transcribe", {"recording_id": rid}, idempotency_key=f"transcribe:{rid}"
        )
    return {"recording_id": rid, "state": "ingested", "sha256": sha, "transcribe_job": job}
