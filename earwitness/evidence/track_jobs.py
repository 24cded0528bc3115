"""The ``tracks.analyze`` job: a track filed as plain evidence is analysed on intake.

An investigator who files a GPX through the general evidence upload expects it on the
case timeline like one sent to ``/api/cases/{id}/tracks``; evidence intake queues this job
in the same transaction, and it parses the stored bytes with default parameters.
"""

from __future__ import annotations

from typing import Any

from earwitness.errors import BadInput
from earwitness.evidence.track_store import analyse_evidence
from earwitness.jobs.registry import JobContext, job_handler


@job_handler("tracks.analyze", max_attempts=3, backoff_s=2.0)
def tracks_analyze_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    evidence_id = payload.get("evidence_id")
    if not isinstance(evidence_id, int):
        raise BadInput("tracks.analyze job needs an integer evidence_id")
    actor = payload.get("actor")
    with ctx.env.db.session() as session:
        result = analyse_evidence(
            session, ctx.env.blobs, evidence_id, actor if isinstance(actor, str) else None
        )
    ctx.progress(100.0, "analysed" if result.get("analysed") else "not a readable track")
    return result
