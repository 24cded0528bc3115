"""Tracks as evidence: parse first, then file, store points and record each analysis.

A track is parsed *before* anything is stored, so a broken or hostile file leaves no
blob, no row and no custody entry. Each analysis run is an ``analysis`` custody entry
on the evidence carrying its parameters and verdict: re-running with other
parameters never hides an earlier result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from earwitness.errors import BadInput, Conflict, NotFound
from earwitness.evidence import custody
from earwitness.evidence.intake import IntakeRequest, get_evidence, intake
from earwitness.evidence.store import BlobStore
from earwitness.evidence.tracks import AnalysisParams, ParseOptions, TrackData, analyze, parse_track
from earwitness.models import Evidence, Track, TrackPoint

MAX_TRACK_BYTES = 200 * 1024 * 1024


def run_analysis(
    session: Session,
    row: Track,
    evidence: Evidence | None,
    track: TrackData,
    params: AnalysisParams,
    options: ParseOptions,
    actor: str | None,
) -> dict[str, Any]:
    result = analyze(track, params).as_dict()
    result["parse_options"] = options.record()
    row.analysis = result
    if evidence is not None:
        digest = hashlib.sha256(
            json.dumps(result["params"], sort_keys=True, default=str).encode()
        ).hexdigest()
        custody.append(
            session,
            evidence,
            "analysis",
            actor=actor,
            detail=f"track {row.id} analysed: " + "; ".join(result["verdict"])[:400],
            data={"track_id": row.id, "params_sha256": digest, "verdict": result["verdict"]},
        )
    return result


def store_points(session: Session, row: Track, track: TrackData) -> None:
    """Bulk insert (one executemany), since a day of 1 Hz GPS is 86,400 rows."""
    rows = [
        {
            "track_id": row.id,
            "seq": i,
            "at": track.time_at(i),
            "lat": float(track.lat[i]),
            "lon": float(track.lon[i]),
            "ele": None if track.ele[i] != track.ele[i] else float(track.ele[i]),
            "speed_mps": None
            if track.speed_mps[i] != track.speed_mps[i]
            else float(track.speed_mps[i]),
        }
        for i in range(len(track))
    ]
    for start in range(0, len(rows), 10_000):
        session.execute(insert(TrackPoint), rows[start : start + 10_000])


def file_track(
    session: Session,
    blobs: BlobStore,
    request: IntakeRequest,
    data: bytes,
    *,
    options: ParseOptions,
    params: AnalysisParams,
    max_bytes: int | None = None,
) -> tuple[Evidence, Track]:
    """Parse, then file as evidence on the case, store points and the first analysis.

    Bytes already filed on the case (say, a GPX sent as plain evidence) are not refused:
    their evidence row is reused and analysed — again, with these parameters, if it was."""
    if max_bytes is not None and len(data) > max_bytes:
        raise BadInput(f"track file is larger than {max_bytes} bytes")
    track = parse_track(data, options, request.original_name)
    sha = hashlib.sha256(data).hexdigest()
    existing = session.scalar(
        select(Evidence).where(Evidence.case_id == request.case_id, Evidence.sha256 == sha)
    )
    if existing is not None:
        known = session.scalar(select(Track).where(Track.evidence_id == existing.id))
        if known is not None:
            run_analysis(session, known, existing, track, params, options, request.actor)
            return existing, known
        return existing, track_row(session, existing, track, params, options, request.actor)
    evidence = intake(
        session,
        blobs,
        dataclasses.replace(request, kind="track"),
        io.BytesIO(data),
        analyse_track=False,  # analysed right here
    )
    return evidence, track_row(session, evidence, track, params, options, request.actor)


def track_row(
    session: Session,
    evidence: Evidence,
    track: TrackData,
    params: AnalysisParams,
    options: ParseOptions,
    actor: str | None,
) -> Track:
    """The Track of a filed evidence file: its points and first analysis."""
    row = Track(
        evidence_id=evidence.id,
        case_id=evidence.case_id,
        name=track.name[:200],
        source_format=track.source_format,
        coord_system=track.coord_system,
        started_at=track.time_at(0) if track.has_time else None,
        ended_at=track.time_at(len(track) - 1) if track.has_time else None,
        point_count=len(track),
    )
    session.add(row)
    session.flush()
    store_points(session, row, track)
    result = run_analysis(session, row, evidence, track, params, options, actor)
    row.distance_m = result["summary"]["distance_m"]
    return row


def analyse_evidence(
    session: Session, blobs: BlobStore, evidence_id: int, actor: str | None
) -> dict[str, Any]:
    """Analyse a track filed as plain evidence (the ``tracks.analyze`` job), default
    parameters; a file that does not parse is reported, not retried."""
    evidence = get_evidence(session, evidence_id)
    known = session.scalar(select(Track).where(Track.evidence_id == evidence.id))
    if known is not None:
        return {"track_id": known.id, "analysed": True, "already": True}
    with blobs.open(evidence.sha256) as stream:
        data = stream.read()
    if hashlib.sha256(data).hexdigest() != evidence.sha256:
        raise Conflict(f"evidence {evidence.id} no longer matches its hash; run verify")
    options = ParseOptions()
    try:
        track = parse_track(data, options, evidence.original_name)
    except BadInput as exc:
        return {"analysed": False, "reason": exc.detail}
    row = track_row(session, evidence, track, AnalysisParams(), options, actor)
    return {"track_id": row.id, "analysed": True, "verdict": row.analysis.get("verdict")}


def reanalyze(
    session: Session,
    blobs: BlobStore,
    track_id: int,
    *,
    params: AnalysisParams,
    options: ParseOptions | None,
    actor: str | None,
) -> dict[str, Any]:
    """Analyse a stored track again from its evidence bytes with new parameters."""
    row = session.get(Track, track_id)
    if row is None:
        raise NotFound(f"track {track_id} does not exist")
    if row.evidence_id is None:
        raise BadInput(f"track {track_id} has no evidence file to re-read")
    evidence = get_evidence(session, row.evidence_id)
    if options is None:
        stored = row.analysis.get("parse_options") or {"format": row.source_format}
        options = ParseOptions.from_record(stored)
    with blobs.open(evidence.sha256) as stream:
        data = stream.read()
    if hashlib.sha256(data).hexdigest() != evidence.sha256:
        raise Conflict(f"evidence {evidence.id} no longer matches its hash; run verify")
    track = parse_track(data, options, evidence.original_name)
    return run_analysis(session, row, evidence, track, params, options, actor)
