"""GPS tracks: analyse an upload without storing it, file one on a case, re-analyse."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from earwitness.api.deps import PrincipalDep, RuntimeDep, SessionDep
from earwitness.api.params import DbInt
from earwitness.errors import BadInput, NotFound, PayloadTooLarge
from earwitness.evidence.intake import IntakeRequest
from earwitness.evidence.track_store import file_track, reanalyze
from earwitness.evidence.tracks import analyze, parse_track
from earwitness.evidence.tracks.params import analysis_params, parse_options
from earwitness.models import Track

router = APIRouter(tags=["tracks"])

PARAMS_HELP = (
    'JSON object, e.g. {"destination": "22.54,114.05,customer", "promised_at": '
    '"2026-11-20T08:30:00+08:00", "places": ["petrol station=22.55,114.02"]}'
)
OPTIONS_HELP = 'JSON object, e.g. {"format": "csv", "coord_system": "gcj02", "csv_lat": "纬度"}'


class TrackOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    evidence_id: int | None
    case_id: int | None
    name: str
    source_format: str
    coord_system: str
    started_at: datetime | None
    ended_at: datetime | None
    point_count: int
    distance_m: float | None
    analysis: dict[str, Any]


class ReanalyzeIn(BaseModel):
    params: dict[str, Any] = {}
    options: dict[str, Any] | None = None


def _json_field(text: str | None, name: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{name}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise BadInput(f"{name}: must be a JSON object")
    return value


async def _read_limited(file: UploadFile, limit: int) -> bytes:
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"track file exceeds the limit of {limit} bytes")
    return data


@router.post("/api/tracks/analyze")
async def analyze_upload(
    runtime: RuntimeDep,
    _: PrincipalDep,
    file: Annotated[UploadFile, File(description="GPX, NMEA, CSV, GeoJSON or KML")],
    params: Annotated[str | None, Form(description=PARAMS_HELP)] = None,
    options: Annotated[str | None, Form(description=OPTIONS_HELP)] = None,
) -> dict[str, Any]:
    """Analyse a track file and return the result; nothing is stored."""
    data = await _read_limited(file, runtime.settings.max_upload_bytes)

    def work() -> dict[str, Any]:  # parsing and analysis are CPU work: not on the event loop
        parse = parse_options(_json_field(options, "options"))
        track = parse_track(data, parse, file.filename)
        result = analyze(track, analysis_params(_json_field(params, "params"))).as_dict()
        result["parse_options"] = parse.record()
        return result

    return await run_in_threadpool(work)


@router.post("/api/cases/{case_id}/tracks", status_code=201)
async def file_case_track(
    case_id: DbInt,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File()],
    params: Annotated[str | None, Form(description=PARAMS_HELP)] = None,
    options: Annotated[str | None, Form(description=OPTIONS_HELP)] = None,
    source: Annotated[str, Form()] = "upload",
) -> dict[str, Any]:
    """Parse (refusing broken files before storing), file as evidence, analyse."""
    data = await _read_limited(file, runtime.settings.max_upload_bytes)
    # Parsing, analysis and the database writes block: run them in the threadpool.
    evidence, track = await run_in_threadpool(
        lambda: file_track(
            session,
            runtime.blobs,
            IntakeRequest(case_id, file.filename, principal.username, source, "track"),
            data,
            options=parse_options(_json_field(options, "options")),
            params=analysis_params(_json_field(params, "params")),
        )
    )
    return {"evidence_id": evidence.id, "track_id": track.id, "analysis": track.analysis}


@router.get("/api/tracks/{track_id}", response_model=TrackOut)
def read_track(track_id: DbInt, session: SessionDep, _: PrincipalDep) -> Track:
    track = session.get(Track, track_id)
    if track is None:
        raise NotFound(f"track {track_id} does not exist")
    return track


@router.post("/api/tracks/{track_id}/analyze")
def reanalyze_track(
    track_id: DbInt,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    body: Annotated[ReanalyzeIn, Body()],
) -> dict[str, Any]:
    """Run the analysis again with other parameters; recorded in the custody log."""
    return reanalyze(
        session,
        runtime.blobs,
        track_id,
        params=analysis_params(body.params),
        options=parse_options(body.options) if body.options is not None else None,
        actor=principal.username,
    )
