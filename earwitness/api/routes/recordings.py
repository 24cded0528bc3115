"""Recordings: upload (→ transcription job), list, detail, seekable audio, transcript exports.

Audio is evidence: it is served only after its bytes were re-hashed against the hash
recorded at intake, from a private checked copy, so an edited file is refused and
never streamed.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from starlette.background import BackgroundTask

from earwitness.api.deps import PrincipalDep, RuntimeDep, SessionDep
from earwitness.api.params import DbInt
from earwitness.errors import BadInput, NotFound, TamperedEvidence
from earwitness.evidence import custody
from earwitness.evidence.intake import (
    intake_hash,
    recording_evidence,
    verified_temp_file,
)
from earwitness.models import Recording
from earwitness.recordings.intake import MEDIA_TYPES, ingest_upload
from earwitness.transcription.exports import FORMATS, render
from earwitness.transcription.pipeline import latest_transcript, segments_of

router = APIRouter(prefix="/api/recordings", tags=["recordings"])


class RecordingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    call_id: int | None
    case_id: int | None
    state: str
    sha256: str | None
    size_bytes: int | None
    format: str | None
    codec: str | None
    channels: int | None
    sample_rate: int | None
    duration_s: float | None
    header_repaired: bool
    dual_mono: bool
    original_name: str | None
    error: str | None
    created_at: datetime


class UploadOut(BaseModel):
    recording: RecordingOut
    job_id: int | None


@router.post("", response_model=UploadOut, status_code=201)
def upload_recording(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="audio: WAV, MP3, OGG/Opus, FLAC, M4A, ...")],
    call_id: Annotated[DbInt | None, Form()] = None,
    case_id: Annotated[DbInt | None, Form()] = None,
    language: Annotated[str | None, Form(max_length=5)] = None,
    transcribe: Annotated[bool, Form()] = True,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> UploadOut:
    """Store an upload (nothing is stored if it is unusable), file it as evidence and queue
    its transcription."""
    with runtime.db.session() as session:
        recording = ingest_upload(
            session,
            runtime.blobs,
            file.file,
            original_name=file.filename or "upload",
            call_id=call_id,
            case_id=case_id,
            max_bytes=runtime.settings.max_upload_bytes,
            actor=principal.username,
            note=note,
            # decoded in a child process: a hostile file cannot take the API down
            decode_limits=(
                runtime.settings.upload_decode_timeout_s,
                runtime.settings.upload_decode_memory_mb,
            ),
        )
        session.flush()
        out = RecordingOut.model_validate(recording)
    job_id = None
    if transcribe:
        payload: dict[str, object] = {"recording_id": out.id}
        if language:
            payload["language"] = language
        job_id = runtime.submit("transcribe", payload, idempotency_key=f"transcribe:{out.id}")
    return UploadOut(recording=out, job_id=job_id)


@router.get("", response_model=list[RecordingOut])
def list_recordings(
    session: SessionDep,
    _: PrincipalDep,
    call_id: DbInt | None = None,
    case_id: DbInt | None = None,
    limit: Annotated[DbInt, Query(ge=1, le=500)] = 50,
    offset: Annotated[DbInt, Query(ge=0)] = 0,
) -> list[Recording]:
    query = select(Recording).order_by(Recording.id.desc()).limit(limit).offset(offset)
    if call_id is not None:
        query = query.where(Recording.call_id == call_id)
    if case_id is not None:
        query = query.where(Recording.case_id == case_id)
    return list(session.scalars(query))


def _recording(session: SessionDep, recording_id: int) -> Recording:
    recording = session.get(Recording, recording_id)
    if recording is None:
        raise NotFound(f"recording {recording_id} does not exist")
    return recording


@router.get("/{recording_id}", response_model=RecordingOut)
def read_recording(recording_id: DbInt, session: SessionDep, _: PrincipalDep) -> Recording:
    return _recording(session, recording_id)


@router.get("/{recording_id}/audio", response_class=FileResponse)
def recording_audio(
    recording_id: DbInt,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    who: PrincipalDep,
) -> FileResponse:
    """The stored bytes; HTTP Range requests are answered with 206 so players can seek.

    Every request re-hashes the audio against the hash recorded at intake (the
    recording's evidence row, else the hash it was stored under) and serves a private
    copy made by that same read; a mismatch is a 409 ``evidence-tampered`` problem.
    """
    recording = _recording(session, recording_id)
    if not recording.sha256 or recording.state != "ingested":
        raise NotFound(f"recording {recording_id} has no audio (state {recording.state})")
    label = f"audio of recording {recording_id}"
    expected = recording.sha256
    evidence = recording_evidence(session, recording.id)
    if evidence is not None:
        expected = intake_hash(session, evidence)
        label += f" (evidence {evidence.id})"
        if recording.sha256 != expected:
            raise TamperedEvidence(
                f"{label}: the recording row names sha256 {recording.sha256[:12]}… but its "
                f"intake hash is {expected[:12]}…; the row was changed after intake"
            )
    copy = verified_temp_file(runtime.blobs, expected, label)
    if evidence is not None:  # every play is on the custody record, under the user's name
        byte_range = request.headers.get("range")
        custody.append(
            session,
            evidence,
            "view",
            actor=who.username,
            detail="audio played through the API",
            data={"recording_id": recording.id, **({"range": byte_range} if byte_range else {})},
        )
        session.commit()
    media = MEDIA_TYPES.get(recording.format or "", "application/octet-stream")
    return FileResponse(
        copy,
        media_type=media,
        filename=recording.original_name or None,
        headers={"ETag": f'"{expected}"'},  # content-addressed: stable across copies
        background=BackgroundTask(os.unlink, copy),
    )


@router.get("/{recording_id}/transcript")
def recording_transcript(
    recording_id: DbInt,
    session: SessionDep,
    _: PrincipalDep,
    format: str = Query("json", description="json, srt, vtt, txt or rttm"),  # noqa: A002
) -> Response:
    recording = _recording(session, recording_id)
    if format.lower() not in FORMATS:
        raise BadInput(f"unknown transcript format {format!r}; use one of {', '.join(FORMATS)}")
    transcript = latest_transcript(session, recording.id)
    meta = {
        "recording_id": recording.id,
        "transcript_id": transcript.id,
        "model": transcript.model,
        "language": transcript.language,
        "diarization": transcript.diarization,
        "role_rule": transcript.params.get("role_rule"),
        "params": transcript.params,
    }
    body = render(format, segments_of(transcript), meta=meta, file_id=f"recording-{recording.id}")
    if format.lower() == "json":
        return JSONResponse(content=json.loads(body))
    return Response(body, media_type=f"{FORMATS[format.lower()]}; charset=utf-8")
