"""The ``transcribe`` job: payload ``{"recording_id": N, "language"?, "vocabulary"?, ...}``.

Idempotent by construction: the transcript is keyed by recording and model
and replaced on re-run, so a retry after a crash, or a duplicate job, leaves
exactly one transcript.
"""

from __future__ import annotations

from typing import Any

from earwitness.errors import BadInput
from earwitness.jobs.registry import JobContext, job_handler
from earwitness.transcription.diarization import make_diarizer
from earwitness.transcription.engine import TranscribeOptions
from earwitness.transcription.pipeline import transcribe_recording


def options_from_payload(payload: dict[str, Any]) -> TranscribeOptions:
    vocabulary = payload.get("vocabulary") or []
    if not isinstance(vocabulary, list) or not all(isinstance(v, str) for v in vocabulary):
        raise BadInput("vocabulary must be a list of strings")
    language = payload.get("language")
    if language is not None and (not isinstance(language, str) or len(language) > 5):
        raise BadInput("language must be a short language code such as 'zh' or 'en'")
    return TranscribeOptions(language=language, vocabulary=tuple(vocabulary))


@job_handler("transcribe", max_attempts=3, backoff_s=5.0)
def transcribe_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    recording_id = payload.get("recording_id")
    if not isinstance(recording_id, int):
        raise BadInput("transcribe job needs an integer recording_id")
    env = ctx.env
    # Case facts (plates, work orders, places) are deliberately *not* passed to the
    # recogniser: primed with them it copied them into transcripts of audio that did not
    # carry them. Only an explicit vocabulary is used, as guarded hotwords (engine.py).
    options = options_from_payload(payload)
    diarizer = make_diarizer(str(payload.get("diarizer", "encoder")))
    transcript_id = transcribe_recording(
        env.db,
        env.blobs,
        env.settings,
        recording_id,
        options,
        diarizer=diarizer,
        progress=lambda pct, msg: ctx.progress(pct, msg),
    )
    ctx.progress(100.0, "stored")
    # Search indexes in its own job: a slow or failed index run never fails a transcription.
    env.submit(
        "search.index",
        {"recording_id": recording_id},
        idempotency_key=f"search.index:{transcript_id}",
    )
    env.submit(
        "qa.audit", {"recording_id": recording_id}, idempotency_key=f"qa.audit:{transcript_id}"
    )
    return {"transcript_id": transcript_id, "recording_id": recording_id}
