"""The ``qa.audit`` job: audit a recording's latest transcript; queued after transcription.

Idempotent: the result is keyed by recording and replaced, so a retry or a duplicate job
leaves one result. Loudness cues need the audio, which is decoded from the blob store
when the recording has it; a recording without audio is audited on its words and timing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from earwitness.db import Database
from earwitness.errors import BadInput
from earwitness.evidence.store import BlobStore
from earwitness.jobs.registry import JobContext, job_handler
from earwitness.models import Recording
from earwitness.qa.store import audit_recording
from earwitness.recordings.intake import copy_blob_to
from earwitness.recordings.probe import decode_channels

#: Voice activity (silero) wants 16 kHz; loudness is measured on the same samples.
AUDIO_RATE = 16000


def recording_audio(
    db: Database, blobs: BlobStore, recording_id: int
) -> tuple[npt.NDArray[np.float32], int] | None:
    """The recording's channels at :data:`AUDIO_RATE`, or None when it has no audio."""
    with db.session() as session:
        rec = session.get(Recording, recording_id)
        sha = rec.sha256 if rec is not None and rec.state == "ingested" else None
    if not sha:
        return None
    with tempfile.TemporaryDirectory(prefix="ew-qa-") as tmp:
        path = copy_blob_to(blobs, sha, Path(tmp) / "audio")
        return decode_channels(path, sample_rate=AUDIO_RATE), AUDIO_RATE


@job_handler("qa.audit", max_attempts=3, backoff_s=2.0)
def qa_audit_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    recording_id = payload.get("recording_id")
    if not isinstance(recording_id, int):
        raise BadInput("qa.audit job needs an integer recording_id")
    env = ctx.env
    wanted = payload.get("loudness", True)
    audio = recording_audio(env.db, env.blobs, recording_id) if wanted else None
    ctx.progress(40.0, "audio decoded" if audio else "no audio; words and timing only")
    with ctx.env.db.session() as session:
        row = audit_recording(
            session, recording_id, rules_file=ctx.env.settings.qa_rules_file, audio=audio
        )
        result = {"recording_id": recording_id, "score": row.score, "failed": row.failed}
    ctx.progress(100.0, "audited")
    return result
