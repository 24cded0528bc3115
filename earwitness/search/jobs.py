"""The ``search.index`` job: payload ``{"recording_id": N}`` or ``{"all": true}``.

Queued by the transcribe job once its transcript is stored, so search never slows
transcription down and a failed indexing run is retried on its own.
"""

from __future__ import annotations

from typing import Any

from earwitness.errors import BadInput
from earwitness.jobs.registry import JobContext, job_handler
from earwitness.search.indexer import index_recording, reindex_all


@job_handler("search.index", max_attempts=3, backoff_s=2.0)
def search_index_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("all") is True:
        report = reindex_all(ctx.env.db)
        return {"recordings": report.recordings, "segments": report.segments}
    recording_id = payload.get("recording_id")
    if not isinstance(recording_id, int):
        raise BadInput("search.index job needs an integer recording_id or all=true")
    with ctx.env.db.session() as session:
        count = index_recording(session, recording_id)
    ctx.progress(100.0, f"{count} segments indexed")
    return {"recording_id": recording_id, "segments": count}
