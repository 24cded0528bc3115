"""A case bundle: one zip a third party can check without earwitness.

Layout::

    files/0007-recording.wav      the evidence bytes (names rebuilt, never the caller's path)
    transcripts/call-3.json       transcripts of the case's calls, with a .txt beside
    tracks/track-2.json           stored track analyses (parameters included)
    timeline.json                 everything on one time axis (given by the caller)
    custody.json                  the custody entries of these items + a verify report
    manifest.json                 what each file is, with hashes, who exported it and when
    SHA256SUMS                    ``sha256sum -c SHA256SUMS`` checks every other file

Every exported item gets an ``export`` custody entry *before* the custody log is
written, so the bundle documents its own creation.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.evidence import custody
from earwitness.evidence.intake import case_evidence, superseded_by
from earwitness.evidence.sniff import check_relative_path, safe_member_name
from earwitness.evidence.store import CHUNK, BlobStore
from earwitness.evidence.verify import verify
from earwitness.models import (
    Call,
    Case,
    CustodyEntry,
    Recording,
    Track,
    case_calls,
    utcnow,
)
from earwitness.transcription.queries import find_latest_transcript


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str).encode()


class _ZipWriter:
    """Writes members and remembers their SHA-256 for SHA256SUMS and the manifest."""

    def __init__(self, out: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)
        self.sums: dict[str, str] = {}

    def add_bytes(self, name: str, data: bytes) -> str:
        check_relative_path(name)
        self.zip.writestr(name, data)
        self.sums[name] = hashlib.sha256(data).hexdigest()
        return self.sums[name]

    def add_stream(self, name: str, stream: IO[bytes]) -> str:
        check_relative_path(name)
        digest = hashlib.sha256()
        with self.zip.open(name, "w", force_zip64=True) as member:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                digest.update(chunk)
                member.write(chunk)
        self.sums[name] = digest.hexdigest()
        return self.sums[name]

    def close(self) -> None:
        lines = "".join(f"{sha}  {name}\n" for name, sha in sorted(self.sums.items()))
        self.zip.writestr("SHA256SUMS", lines)
        self.zip.close()


def case_transcripts(session: Session, case_id: int) -> list[dict[str, Any]]:
    """Transcripts of every call linked to the case, newest run per recording."""
    calls = list(
        session.scalars(
            select(Call)
            .join(case_calls, case_calls.c.call_id == Call.id)
            .where(case_calls.c.case_id == case_id)
            .order_by(Call.entered_at)
        )
    )
    out: list[dict[str, Any]] = []
    for call in calls:
        recordings = session.scalars(select(Recording).where(Recording.call_id == call.id))
        for recording in recordings:
            transcript = find_latest_transcript(session, recording.id)
            if transcript is None:
                continue
            out.append(
                {
                    "call_id": call.id,
                    "caller": call.caller,
                    "entered_at": call.entered_at,
                    "recording_id": recording.id,
                    "transcript_id": transcript.id,
                    "model": transcript.model,
                    "language": transcript.language,
                    "segments": [
                        {
                            "id": s.id,
                            "start_s": s.start_s,
                            "end_s": s.end_s,
                            "role": s.role,
                            "speaker": s.speaker,
                            "text": s.text,
                        }
                        for s in transcript.segments
                    ],
                }
            )
    return out


def _transcript_text(item: dict[str, Any]) -> bytes:
    lines = [f"call {item['call_id']} ({item['caller']}) at {item['entered_at']}"]
    for seg in item["segments"]:
        lines.append(f"[{seg['start_s']:8.2f}-{seg['end_s']:8.2f}] {seg['role']}: {seg['text']}")
    return ("\n".join(lines) + "\n").encode()


def write_bundle(
    session: Session,
    blobs: BlobStore,
    case_id: int,
    out: IO[bytes],
    *,
    actor: str | None,
    timeline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the zip for ``case_id`` into ``out``; returns the manifest."""
    case = session.get(Case, case_id)
    items = case_evidence(session, case_id)
    exported_at = utcnow()
    for evidence in items:
        custody.append(session, evidence, "export", actor=actor, detail=f"bundle of case {case_id}")
    writer = _ZipWriter(out)
    files: list[dict[str, Any]] = []
    for evidence in items:
        name = f"files/{evidence.id:04d}-{safe_member_name(evidence.original_name)}"
        with blobs.open(evidence.sha256) as stream:
            sha = writer.add_stream(name, stream)
        files.append(
            {
                "path": name,
                "evidence_id": evidence.id,
                "sha256": sha,
                "stored_sha256": evidence.sha256,
                "size_bytes": evidence.size_bytes,
                "media_type": evidence.media_type,
                "kind": evidence.kind,
                "original_name": evidence.original_name,
                "received_at": evidence.received_at,
                "received_by": evidence.received_by,
                "source": evidence.source,
                "supersedes": evidence.supersedes_id,
                "superseded_by": superseded_by(session, evidence.id),
            }
        )
    for item in case_transcripts(session, case_id):
        stem = f"transcripts/call-{item['call_id']}-rec-{item['recording_id']}"
        writer.add_bytes(f"{stem}.json", _json_bytes(item))
        writer.add_bytes(f"{stem}.txt", _transcript_text(item))
    for track in session.scalars(select(Track).where(Track.case_id == case_id)):
        writer.add_bytes(
            f"tracks/track-{track.id}.json",
            _json_bytes(
                {
                    "track_id": track.id,
                    "evidence_id": track.evidence_id,
                    "source_format": track.source_format,
                    "coord_system": track.coord_system,
                    "point_count": track.point_count,
                    "analysis": track.analysis,
                }
            ),
        )
    writer.add_bytes("timeline.json", _json_bytes(timeline or {"events": []}))
    ids = [e.id for e in items]
    entries = list(
        session.scalars(
            select(CustodyEntry).where(CustodyEntry.evidence_id.in_(ids)).order_by(CustodyEntry.id)
        )
    )
    report = verify(session, blobs, case_id=case_id)
    writer.add_bytes(
        "custody.json",
        _json_bytes(
            {
                "entries": [custody.entry_dict(e) for e in entries],
                "note": "the chain is global: prev_hash may name an entry of another case",
                "verify": report.as_dict(),
            }
        ),
    )
    manifest = {
        "format": "earwitness-bundle/1",
        "case": {
            "id": case_id,
            "number": case.number if case else None,
            "status": case.status if case else None,
        },
        "exported_at": exported_at,
        "exported_by": actor,
        "chain_head": report.chain_head,
        "verified": report.ok,
        "files": files,
        "members": dict(sorted(writer.sums.items())),
    }
    writer.add_bytes("manifest.json", _json_bytes(manifest))
    writer.close()
    return manifest


def copy_stream(src: IO[bytes], dst: IO[bytes]) -> None:
    shutil.copyfileobj(src, dst, CHUNK)
