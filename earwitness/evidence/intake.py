"""Filing a file as evidence on a case, reading it back, superseding it.

Order matters for integrity: the bytes go into the content-addressed store first
(hashed while streaming, size-limited), then the database row and its ``intake``
custody entry are written in the caller's transaction. A failed transaction leaves
at most an unreferenced blob, never a row pointing at missing bytes.

Evidence bytes are only ever handed out after they were re-hashed against the hash
recorded at intake (:func:`verified_copy`): an insider who edits a stored file gets
a refusal naming the item, never the altered bytes served as evidence.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.errors import BadInput, Conflict, NotFound, TamperedEvidence
from earwitness.evidence import custody
from earwitness.evidence.sniff import SNIFF_BYTES, display_name, kind_for, sniff_media_type
from earwitness.evidence.store import CHUNK, BlobInfo, BlobStore
from earwitness.models import Case, CustodyEntry, Evidence, utcnow

log = logging.getLogger(__name__)

KINDS = ("recording", "transcript", "track", "photo", "document")
NOTE_MAX = 2000


@dataclass(frozen=True)
class IntakeRequest:
    """What the caller says about a file; the bytes decide hash, size and media type."""

    case_id: int
    original_name: str | None
    actor: str | None
    source: str = "upload"
    kind: str | None = None
    note: str = ""


def intake_data(evidence: Evidence) -> dict[str, Any]:
    """The evidence row's identity as written into (and later checked against) its intake entry."""
    return {
        "case_id": evidence.case_id,
        "sha256": evidence.sha256,
        "size_bytes": evidence.size_bytes,
        "media_type": evidence.media_type,
        "kind": evidence.kind,
        "original_name": evidence.original_name,
        "source": evidence.source,
        "received_by": evidence.received_by,
        "supersedes_id": evidence.supersedes_id,
        "supersede_reason": evidence.supersede_reason,
    }


def note_of(evidence: Evidence) -> str:
    """The note given at intake ("" when none); kept in ``meta`` (no column of its own)."""
    return str((evidence.meta or {}).get("note") or "")


def recording_id_of(evidence: Evidence) -> int | None:
    """The recording this evidence row registers, for recordings filed at audio intake."""
    value = (evidence.meta or {}).get("recording_id")
    return int(value) if value is not None else None


def _get_case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    return case


def _clean_note(note: str | None) -> str:
    return (note or "").strip()[:NOTE_MAX]


def _file(
    session: Session,
    *,
    case_id: int | None,
    info: BlobInfo,
    media_type: str,
    kind: str,
    name: str,
    actor: str | None,
    source: str,
    note: str,
    meta: dict[str, Any] | None = None,
    supersedes: Evidence | None = None,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Evidence:
    """Write the row and its ``intake`` entry (note and source visible in both)."""
    note = _clean_note(note)
    evidence = Evidence(
        case_id=case_id,
        kind=kind,
        sha256=info.sha256,
        size_bytes=info.size,
        media_type=media_type,
        original_name=name,
        received_at=utcnow(),
        received_by=actor,
        source=source[:200],
        supersedes_id=supersedes.id if supersedes is not None else None,
        supersede_reason=reason,
        meta={**(meta or {}), **({"note": note} if note else {})},
    )
    session.add(evidence)
    session.flush()
    detail = f"received {name!r} from {source[:200]}" + (f"; note: {note}" if note else "")
    # Extra keys beside intake_data() are recorded, not compared by verify (it checks
    # the row's own columns); the note and the recording link are thus on the chain.
    data = intake_data(evidence) | {"note": note} | (extra or {})
    custody.append(
        session, evidence, "intake", actor=actor, detail=detail, data=data, at=evidence.received_at
    )
    return evidence


def intake(
    session: Session,
    blobs: BlobStore,
    request: IntakeRequest,
    stream: BinaryIO,
    *,
    max_bytes: int | None = None,
    supersedes: Evidence | None = None,
    reason: str | None = None,
    analyse_track: bool = True,
) -> Evidence:
    """Store the bytes, file them on the case and open their custody chain.

    A track file (GPX, NMEA, ...) is also queued for analysis (job ``tracks.analyze``, in
    this transaction), so it reaches the case timeline without a second upload."""
    name = display_name(request.original_name)  # refuse hostile names before storing
    if request.kind is not None and request.kind not in KINDS:
        raise BadInput(f"unknown evidence kind {request.kind!r}; one of {', '.join(KINDS)}")
    _get_case(session, request.case_id)
    if _is_empty(stream):  # before storing: an empty upload leaves no blob behind
        raise BadInput("the file is empty; nothing was filed")
    info = blobs.put_stream(stream, max_bytes=max_bytes)
    blobs.discard_on_rollback(session, info)  # an error below, or at commit: no orphan blob
    if info.size == 0:
        raise BadInput("the file is empty; nothing was filed")
    existing = session.scalar(
        select(Evidence).where(Evidence.case_id == request.case_id, Evidence.sha256 == info.sha256)
    )
    if existing is not None:
        raise Conflict(
            f"these bytes are already evidence {existing.id} on case {request.case_id} "
            f"(sha256 {info.sha256[:12]}…)"
        )
    with blobs.open(info.sha256) as blob:
        media_type = sniff_media_type(blob.read(SNIFF_BYTES))
    evidence = _file(
        session,
        case_id=request.case_id,
        info=info,
        media_type=media_type,
        kind=request.kind or kind_for(media_type),
        name=name,
        actor=request.actor,
        source=request.source,
        note=request.note,
        supersedes=supersedes,
        reason=reason,
    )
    if analyse_track and evidence.kind == "track":
        from earwitness.jobs.queue import enqueue

        enqueue(
            session,
            "tracks.analyze",
            {"evidence_id": evidence.id, "actor": request.actor},
            idempotency_key=f"tracks.analyze:{evidence.id}",
        )
    return evidence


def _is_empty(stream: BinaryIO) -> bool:
    """True for a seekable stream with no bytes left (the position is kept)."""
    try:
        if not stream.seekable():
            return False
        here = stream.tell()
        first = stream.read(1)
        stream.seek(here)
    except (OSError, ValueError):
        return False
    return not first


def recording_evidence(session: Session, recording_id: int) -> Evidence | None:
    """The evidence row that registers a recording (``meta.recording_id``), if any."""
    return session.scalar(
        select(Evidence)
        .where(
            Evidence.kind == "recording",
            Evidence.meta["recording_id"].as_integer() == recording_id,
        )
        .order_by(Evidence.id)
        .limit(1)
    )


def register_recording(
    session: Session,
    *,
    recording_id: int,
    case_id: int | None,
    sha256: str,
    size_bytes: int,
    media_type: str,
    original_name: str | None,
    actor: str | None,
    source: str,
    note: str = "",
    at_intake: datetime | None = None,
) -> Evidence:
    """File an already stored recording as evidence; idempotent per recording.

    The hash is the one the recording was stored under (its intake hash), never a
    re-hash of what is on disk now: a file changed before this call still fails
    ``verify``. If the same bytes are already evidence on that case (filed by hand),
    the recording's own row is filed on no case, so the two never collide.
    """
    existing = recording_evidence(session, recording_id)
    if existing is not None:
        return existing
    if case_id is not None and session.scalar(
        select(Evidence.id).where(Evidence.case_id == case_id, Evidence.sha256 == sha256)
    ):
        case_id = None
    extra: dict[str, Any] = {"recording_id": recording_id}
    if at_intake is not None:
        extra["recording_ingested_at"] = custody.canonical_time(at_intake)
    return _file(
        session,
        case_id=case_id,
        info=BlobInfo(sha256, size_bytes),
        media_type=media_type,
        kind="recording",
        name=_recording_name(original_name, recording_id),
        actor=actor,
        source=source,
        note=note,
        meta={"recording_id": recording_id},
        extra=extra,
    )


def _recording_name(original_name: str | None, recording_id: int) -> str:
    """A recording was already accepted under this name: clean it, never refuse it here."""
    try:
        return display_name((original_name or "").replace("\x00", "\N{REPLACEMENT CHARACTER}"))
    except BadInput:
        return f"recording-{recording_id}"


def intake_hash(session: Session, evidence: Evidence) -> str:
    """The SHA-256 written into the item's ``intake`` custody entry (the row's as fallback).

    Preferred over ``Evidence.sha256`` because an insider who swaps a blob *and*
    edits the row's hash still cannot change what the hash-chained entry says.
    """
    entry = session.scalar(
        select(CustodyEntry)
        .where(CustodyEntry.evidence_id == evidence.id, CustodyEntry.action == "intake")
        .order_by(CustodyEntry.id)
        .limit(1)
    )
    recorded = (entry.data or {}).get("sha256") if entry is not None else None
    return str(recorded) if recorded else evidence.sha256


def copy_verified(blobs: BlobStore, sha256: str, out: IO[bytes], label: str) -> int:
    """Copy a blob into ``out`` while hashing it; TamperedEvidence unless it matches.

    One read serves both the check and the copy, so bytes changed between a check
    and a later read can never be what is handed out. No cache: hashing a call
    recording takes milliseconds, and any cache key (mtime, size) is something an
    insider editing the file can keep unchanged.
    """
    if not blobs.exists(sha256):
        raise TamperedEvidence(f"{label}: the stored file is missing")
    digest = hashlib.sha256()
    size = 0
    with blobs.open(sha256) as src:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    if digest.hexdigest() != sha256:
        log.error("%s: stored bytes no longer match sha256 %s", label, sha256)
        raise TamperedEvidence(
            f"{label}: the stored file no longer matches its intake hash "
            f"(sha256 {sha256[:12]}…); it was changed after intake and is not served"
        )
    out.flush()
    return size


def verified_temp_file(blobs: BlobStore, sha256: str, label: str) -> Path:
    """A private, checked copy of a blob (for responses that need a path, e.g. Range).

    The caller deletes it when done; copies left behind by an aborted response are
    removed by the next call once they are an hour old.
    """
    tmp_dir = blobs.root / "tmp"
    _sweep(tmp_dir)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="serve-")
    try:
        with os.fdopen(fd, "wb") as out:
            copy_verified(blobs, sha256, out, label)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _sweep(tmp_dir: Path, max_age_s: float = 3600.0) -> None:
    cutoff = utcnow().timestamp() - max_age_s
    for stale in tmp_dir.glob("serve-*"):
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
        except OSError:
            pass


def supersede(
    session: Session,
    blobs: BlobStore,
    old_id: int,
    request: IntakeRequest,
    stream: BinaryIO,
    *,
    reason: str,
    max_bytes: int | None = None,
) -> Evidence:
    """File a replacement; the old item stays untouched and gets a ``supersede`` entry."""
    if not reason or not reason.strip():
        raise BadInput("a reason is required to supersede evidence")
    old = get_evidence(session, old_id)
    if old.case_id != request.case_id:
        raise BadInput(f"evidence {old_id} belongs to case {old.case_id}, not {request.case_id}")
    later = superseded_by(session, old.id)
    if later is not None:
        raise Conflict(f"evidence {old_id} was already superseded by evidence {later}")
    new = intake(
        session, blobs, request, stream, max_bytes=max_bytes, supersedes=old, reason=reason.strip()
    )
    custody.append(
        session,
        old,
        "supersede",
        actor=request.actor,
        detail=f"superseded by evidence {new.id}: {reason.strip()}"[:500],
        data={"superseded_by": new.id, "reason": reason.strip()},
    )
    return new


def superseded_by(session: Session, evidence_id: int) -> int | None:
    return session.scalar(select(Evidence.id).where(Evidence.supersedes_id == evidence_id))


def get_evidence(session: Session, evidence_id: int) -> Evidence:
    evidence = session.get(Evidence, evidence_id)
    if evidence is None:
        raise NotFound(f"evidence {evidence_id} does not exist")
    return evidence


def open_for_view(
    session: Session, blobs: BlobStore, evidence_id: int, actor: str | None, purpose: str = ""
) -> tuple[Evidence, BinaryIO]:
    """Checked bytes (a private copy) and a ``view`` entry in the custody chain.

    Refuses (TamperedEvidence, nothing logged as viewed) when the stored file no
    longer matches the hash recorded at intake.
    """
    evidence = get_evidence(session, evidence_id)
    expected = intake_hash(session, evidence)
    copy = cast(BinaryIO, tempfile.TemporaryFile(dir=blobs.root / "tmp", prefix="view-"))  # noqa: SIM115
    try:
        copy_verified(blobs, expected, copy, f"evidence {evidence.id}")
    except BaseException:
        copy.close()
        raise
    copy.seek(0)
    custody.append(session, evidence, "view", actor=actor, detail=purpose or "content read")
    return evidence, copy


def case_evidence(session: Session, case_id: int) -> list[Evidence]:
    _get_case(session, case_id)
    return list(
        session.scalars(select(Evidence).where(Evidence.case_id == case_id).order_by(Evidence.id))
    )
