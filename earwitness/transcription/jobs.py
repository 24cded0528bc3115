"""The ``transcribe`` job: payload ``{"recording_id": N, "language"?, "vocabulary"?, ...}``.

Idempotent by construction: the transcript is keyed by recording and model
and replaced on re-run, so a retry after a crash, or a duplicate job, leaves
exactly one transcript.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.errors import BadInput
from earwitness.jobs.registry import JobContext, job_handler
from earwitness.models import Case, Recording, case_calls
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


#: Fact kinds worth priming the recogniser with: names and codes it cannot guess.
VOCABULARY_KINDS = ("plate", "work_order", "place")
MAX_VOCABULARY = 24


def case_vocabulary(session: Session, recording_id: int) -> list[str]:
    """Plates, work orders and places already known on the recording's case(s).

    A case's facts are either extracted items (``{"items": [{kind, value, status}]}``)
    or plain ``{kind: value}`` entries typed in by a person; rejected items are skipped.
    """
    recording = session.get(Recording, recording_id)
    if recording is None:
        return []
    case_ids = {recording.case_id} if recording.case_id else set()
    if recording.call_id is not None:
        case_ids |= set(
            session.scalars(
                select(case_calls.c.case_id).where(case_calls.c.call_id == recording.call_id)
            )
        )
    terms: list[str] = []
    for case in session.scalars(select(Case).where(Case.id.in_(case_ids))):
        facts = case.facts or {}
        items = facts.get("items")
        if isinstance(items, list):
            terms += [
                str(i["value"])
                for i in items
                if isinstance(i, dict)
                and i.get("kind") in VOCABULARY_KINDS
                and i.get("status") != "rejected"
                and i.get("value")
            ]
        terms += [str(facts[k]) for k in VOCABULARY_KINDS if isinstance(facts.get(k), str)]
    return list(dict.fromkeys(t.strip() for t in terms if t.strip()))[:MAX_VOCABULARY]


@job_handler("transcribe", max_attempts=3, backoff_s=5.0)
def transcribe_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    recording_id = payload.get("recording_id")
    if not isinstance(recording_id, int):
        raise BadInput("transcribe job needs an integer recording_id")
    env = ctx.env
    options = options_from_payload(payload)
    with env.db.session() as session:
        known = case_vocabulary(session, recording_id)
    if known:
        merged = tuple(dict.fromkeys([*options.vocabulary, *known]))
        options = dataclasses.replace(options, vocabulary=merged)
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
