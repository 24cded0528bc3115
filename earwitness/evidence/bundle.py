"""A case bundle: one zip a third party can check without earwitness.

Layout::

    TAMPERED.txt                  only in a bundle exported despite failed verification
    files/0007-证据.txt            evidence filed on the case (names rebuilt, Unicode kept)
    recordings/0012-call-5.wav    audio of the case's calls (each one evidence)
    transcripts/call-5-rec-3.json transcripts of those recordings, decoding params included,
                                  with a .txt beside
    tracks/track-2.json           stored track analyses (parameters included)
    timeline.json                 everything on one time axis (given by the caller)
    custody.json                  the custody entries of these items + a verify report
    custody/entries/, keys/,      each entry's signed bytes and Ed25519 signature, the public
    custody/head.*, timestamps/   keys, the signed chain head, RFC 3161 tokens (signing.py)
    VERIFY.md                     how to check all of that with sha256sum and openssl alone
    manifest.json                 what each file is, with hashes, notes, who exported it, when
    SHA256SUMS                    ``sha256sum -c SHA256SUMS`` checks every other file

For evidence files SHA256SUMS lists the hash *recorded at intake*, never one computed
from the bytes on disk at export: if a stored file was altered, ``sha256sum -c`` says
FAILED for it. Generated members (JSON, text) are listed with their own hashes.

A case whose verification fails is refused (TamperedEvidence, nothing written) unless
the caller explicitly allows it; such a bundle opens with ``TAMPERED.txt`` naming what
failed. Every exported item gets an ``export`` custody entry *before* the custody log
is written, so the bundle documents its own creation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import zipfile
from collections.abc import Mapping
from typing import IO, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from earwitness.config import Settings
from earwitness.errors import BadInput, NotFound, TamperedEvidence
from earwitness.evidence import custody
from earwitness.evidence.intake import (
    case_evidence,
    intake_hash,
    note_of,
    recording_evidence,
    recording_id_of,
    superseded_by,
)
from earwitness.evidence.signing import bundle_material
from earwitness.evidence.sniff import check_relative_path, safe_member_name
from earwitness.evidence.store import CHUNK, BlobStore
from earwitness.evidence.verify import VerifyReport, verify
from earwitness.models import (
    Call,
    Case,
    CustodyEntry,
    Evidence,
    Recording,
    Track,
    case_calls,
    utcnow,
)
from earwitness.recordings.intake import register_existing_recordings
from earwitness.transcription.queries import find_latest_transcript


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str).encode()


class _ZipWriter:
    """Writes members and remembers the SHA-256 each is listed with in SHA256SUMS."""

    def __init__(self, out: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)
        self.sums: dict[str, str] = {}

    def _claim(self, name: str) -> None:
        check_relative_path(name)
        if name in self.sums or name == "SHA256SUMS":
            raise BadInput(f"bundle member {name!r} would be written twice")

    def add_bytes(self, name: str, data: bytes) -> str:
        self._claim(name)
        self.zip.writestr(name, data)
        self.sums[name] = hashlib.sha256(data).hexdigest()
        return self.sums[name]

    def add_evidence(self, name: str, stream: IO[bytes] | None, listed_sha256: str) -> str | None:
        """Copy evidence bytes, listing them under their intake hash; returns their real hash.

        ``stream`` None (the stored file is gone) lists the member without writing it,
        so ``sha256sum -c`` reports it missing instead of silently skipping it.
        """
        self._claim(name)
        self.sums[name] = listed_sha256
        if stream is None:
            return None
        digest = hashlib.sha256()
        with self.zip.open(name, "w", force_zip64=True) as member:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                digest.update(chunk)
                member.write(chunk)
        return digest.hexdigest()

    def abort(self) -> None:
        """Release the zip after a failure; what was written is discarded by the caller."""
        with contextlib.suppress(OSError, ValueError):
            self.zip.close()

    def close(self) -> None:
        lines = "".join(f"{sha}  {name}\n" for name, sha in sorted(self.sums.items()))
        self.zip.writestr("SHA256SUMS", lines)
        self.zip.close()


def case_recordings(session: Session, case_id: int) -> list[Recording]:
    """Recordings of the case's calls and recordings filed on the case, in call order."""
    call_ids = select(case_calls.c.call_id).where(case_calls.c.case_id == case_id)
    rows = session.execute(
        select(Recording, Call.entered_at)
        .outerjoin(Call, Call.id == Recording.call_id)
        .where(or_(Recording.call_id.in_(call_ids), Recording.case_id == case_id))
        .order_by(Call.entered_at, Recording.id)
    )
    return [recording for recording, _ in rows]


def _transcript_item(session: Session, recording: Recording) -> dict[str, Any] | None:
    transcript = find_latest_transcript(session, recording.id)
    if transcript is None:
        return None
    call = session.get(Call, recording.call_id) if recording.call_id is not None else None
    return {
        "call_id": recording.call_id,
        "caller": call.caller if call else None,
        "entered_at": call.entered_at if call else None,
        "recording_id": recording.id,
        "recording_sha256": recording.sha256,
        "transcript_id": transcript.id,
        "created_at": transcript.created_at,
        "model": transcript.model,
        "language": transcript.language,
        "diarization": transcript.diarization,
        # decoding parameters and model identity: what produced this text
        "params": transcript.params or {},
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


def case_transcripts(session: Session, case_id: int) -> list[dict[str, Any]]:
    """Transcripts of every recording of the case, newest run per recording."""
    items = (_transcript_item(session, r) for r in case_recordings(session, case_id))
    return [item for item in items if item is not None]


def _transcript_text(item: dict[str, Any]) -> bytes:
    lines = [
        f"call {item['call_id']} ({item['caller']}) at {item['entered_at']}, "
        f"recording {item['recording_id']}, model {item['model']}"
    ]
    for seg in item["segments"]:
        lines.append(f"[{seg['start_s']:8.2f}-{seg['end_s']:8.2f}] {seg['role']}: {seg['text']}")
    return ("\n".join(lines) + "\n").encode()


def _problem_lines(report: VerifyReport, labels: Mapping[int, str]) -> list[str]:
    """verify's lines, with the recording (or file) an evidence id stands for."""
    out = []
    for problem in report.problems:
        label = labels.get(problem.id) if problem.item == "evidence" else None
        out.append(f"{problem.line()} [{label}]" if label else problem.line())
    return out


def _tampered_text(case_number: str, problems: list[str], actor: str | None) -> bytes:
    lines = [
        "THIS BUNDLE CONTAINS EVIDENCE THAT FAILED VERIFICATION",
        "",
        f"Case {case_number} was exported by {actor or 'unknown'} at {utcnow().isoformat()}",
        "with tampering explicitly allowed. What failed:",
        "",
        *(f"  - {line}" for line in problems),
        "",
        "SHA256SUMS lists every evidence file with the hash recorded when it was received,",
        "so `sha256sum -c SHA256SUMS` reports FAILED for each file changed since intake.",
        "Do not rely on a failed file as evidence without an explanation of the change.",
    ]
    return ("\n".join(lines) + "\n").encode()


def _labels(items: list[Evidence], rec_by_evidence: Mapping[int, Recording]) -> dict[int, str]:
    labels: dict[int, str] = {}
    for evidence in items:
        recording = rec_by_evidence.get(evidence.id)
        if recording is not None:
            call = f", call {recording.call_id}" if recording.call_id else ""
            labels[evidence.id] = f"recording {recording.id}{call}: {evidence.original_name}"
        else:
            labels[evidence.id] = f"{evidence.kind} {evidence.original_name}"
    return labels


def write_bundle(
    session: Session,
    blobs: BlobStore,
    case_id: int,
    out: IO[bytes],
    *,
    actor: str | None,
    timeline: dict[str, Any] | None = None,
    allow_tampered: bool = False,
    settings: Settings,
) -> dict[str, Any]:
    """Write the zip for ``case_id`` into ``out``; returns the manifest.

    Verification runs first: on failure, TamperedEvidence (409) naming every problem
    is raised before a byte is written or an ``export`` entry appended, unless
    ``allow_tampered``. NotFound for an unknown case.
    """
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    recordings = case_recordings(session, case_id)
    # Recordings stored before they were evidence get their row now (cheap, idempotent).
    register_existing_recordings(session, [r.id for r in recordings], actor=actor)
    rec_by_evidence: dict[int, Recording] = {}
    for recording in recordings:
        linked = recording_evidence(session, recording.id)
        if linked is not None:
            rec_by_evidence[linked.id] = recording
    by_id = {e.id: e for e in case_evidence(session, case_id)}
    for evidence_id in rec_by_evidence:
        if evidence_id not in by_id:
            by_id[evidence_id] = session.get_one(Evidence, evidence_id)
    items = [by_id[i] for i in sorted(by_id)]
    labels = _labels(items, rec_by_evidence)

    report = verify(session, blobs, evidence_ids=[e.id for e in items])
    problems = _problem_lines(report, labels)
    if not report.ok and not allow_tampered:
        raise TamperedEvidence(
            f"case {case.number}: verification failed, no bundle written: "
            + "; ".join(problems)
            + ". Export anyway only with allow_tampered=true (CLI --allow-tampered); "
            "the bundle is then marked TAMPERED."
        )
    flagged = {p.id for p in report.problems if p.item == "evidence"}

    exported_at = utcnow()
    for evidence in items:
        custody.append(session, evidence, "export", actor=actor, detail=f"bundle of case {case_id}")
    writer = _ZipWriter(out)
    try:
        if not report.ok:
            writer.add_bytes("TAMPERED.txt", _tampered_text(case.number, problems, actor))

        files: list[dict[str, Any]] = []
        for evidence in items:
            folder = "recordings" if evidence.id in rec_by_evidence else "files"
            name = f"{folder}/{evidence.id:04d}-{safe_member_name(evidence.original_name)}"
            listed = intake_hash(session, evidence)
            if blobs.exists(evidence.sha256):
                with blobs.open(evidence.sha256) as stream:
                    actual = writer.add_evidence(name, stream, listed)
            else:
                actual = writer.add_evidence(name, None, listed)
            if actual != listed and evidence.id not in flagged:
                # changed between verify and this read: never ship it as if it were fine
                raise TamperedEvidence(
                    f"evidence {evidence.id} [{labels[evidence.id]}] changed during the export; "
                    "no bundle written"
                )
            files.append(
                {
                    "path": name,
                    "evidence_id": evidence.id,
                    "sha256": listed,
                    "bundled_sha256": actual,
                    "matches_intake": actual == listed,
                    "size_bytes": evidence.size_bytes,
                    "media_type": evidence.media_type,
                    "kind": evidence.kind,
                    "original_name": evidence.original_name,
                    "received_at": evidence.received_at,
                    "received_by": evidence.received_by,
                    "source": evidence.source,
                    "note": note_of(evidence),
                    "recording_id": recording_id_of(evidence),
                    "case_id": evidence.case_id,
                    "supersedes": evidence.supersedes_id,
                    "superseded_by": superseded_by(session, evidence.id),
                }
            )
        audio_by_recording: dict[int, str] = {}
        for entry in files:
            if entry["evidence_id"] in rec_by_evidence:
                audio_by_recording[rec_by_evidence[entry["evidence_id"]].id] = entry["path"]
        recording_rows: list[dict[str, Any]] = []
        for recording in recordings:
            row: dict[str, Any] = {
                "recording_id": recording.id,
                "call_id": recording.call_id,
                "state": recording.state,
                "audio": audio_by_recording.get(recording.id),
                "sha256": recording.sha256,
                "format": recording.format,
                "channels": recording.channels,
                "sample_rate": recording.sample_rate,
                "duration_s": recording.duration_s,
                "transcript": None,
            }
            item = _transcript_item(session, recording)
            if item is not None:
                prefix = f"call-{recording.call_id}-" if recording.call_id is not None else ""
                stem = f"transcripts/{prefix}rec-{recording.id}"
                item["audio"] = row["audio"]
                writer.add_bytes(f"{stem}.json", _json_bytes(item))
                writer.add_bytes(f"{stem}.txt", _transcript_text(item))
                row["transcript"] = f"{stem}.json"
            recording_rows.append(row)
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
        entries = list(
            session.scalars(
                select(CustodyEntry)
                .where(CustodyEntry.evidence_id.in_([e.id for e in items]))
                .order_by(CustodyEntry.id)
            )
        )
        writer.add_bytes(
            "custody.json",
            _json_bytes(
                {
                    "entries": [custody.entry_dict(e) for e in entries],
                    "note": "the chain is global: prev_hash may name an entry of another case",
                    "verify": report.as_dict() | {"lines": problems},
                }
            ),
        )
        for member, data in bundle_material(session, settings, entries).items():
            writer.add_bytes(member, data)
        manifest = {
            "format": "earwitness-bundle/2",
            "case": {"id": case_id, "number": case.number, "status": case.status},
            "exported_at": exported_at,
            "exported_by": actor,
            "chain_head": custody.chain_head(session),
            "verified": report.ok,
            "tampered": problems,
            "sha256sums": "evidence files: hash recorded at intake; other members: their own hash",
            "files": files,
            "recordings": recording_rows,
            "members": dict(sorted(writer.sums.items())),
        }
        writer.add_bytes("manifest.json", _json_bytes(manifest))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return manifest


def copy_stream(src: IO[bytes], dst: IO[bytes]) -> None:
    shutil.copyfileobj(src, dst, CHUNK)
