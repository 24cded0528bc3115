"""Pick up the stereo file MixMonitor wrote for a call, once the call has hung up.

The tracker creates an ``expected`` recording row at hang-up and queues this job.
The file may not be there yet (MixMonitor flushes after the channel is gone), may
still be growing, may be empty, or may never come: each is a state on the row
(``recording``, ``missing``, ``empty``) instead of a crash, and the job retries
with back-off while waiting makes sense.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from earwitness.errors import BadInput, EarwitnessError, NotFound
from earwitness.jobs.registry import JobContext, job_handler
from earwitness.models import Recording
from earwitness.recordings.intake import ingest_file

FileState = Literal["missing", "empty", "writing", "ready"]
#: A file modified this recently may still be written by MixMonitor.
SETTLE_S = 1.5


class RecordingNotReady(EarwitnessError):
    """Transient: the file is absent or still growing; the job will retry."""

    status, title, slug = 409, "Recording not ready", "recording-not-ready"


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


@job_handler("recording.ingest", max_attempts=8, backoff_s=1.0)
def ingest_pbx_recording(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    rid = int(payload["recording_id"])
    with ctx.env.db.session() as session:
        row = session.get(Recording, rid)
        if row is None:
            raise NotFound(f"recording {rid} does not exist")
        if row.state == "ingested":
            return {"recording_id": rid, "state": "ingested", "sha256": row.sha256}
        path = Path(row.source_path or "")
    last_try = ctx.attempt >= 8
    state = file_state(*_stat(path), time.time())
    if state in ("missing", "writing"):
        label = "missing" if state == "missing" else "recording"
        why = f"{path} not found" if state == "missing" else f"{path} is still being written"
        _set_state(ctx, rid, label, why if last_try else None)
        if last_try:
            return {"recording_id": rid, "state": label, "error": why}
        raise RecordingNotReady(why)
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
