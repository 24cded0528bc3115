"""Take a recording in: check it, store its bytes read-only, record what it is. All or nothing.

Used by the upload API, the CLI and the PBX side (which passes
``expected_channels=2`` because it asked MixMonitor for stereo). The order is
chosen so that a failure leaves no trace: the audio is fully decoded *before*
its bytes go into the blob store, and a blob this call created is removed
again if the database rows cannot be written.

Every stored recording is also *evidence*: an ``Evidence`` row of kind
``recording`` (``meta.recording_id`` links it) with its ``intake`` custody entry,
written in the same transaction, so ``verify`` re-hashes call recordings like any
other evidence. Recordings stored before that rule get their row from
:func:`register_existing_recordings` (idempotent, no hashing: cheap).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.errors import BadInput, PayloadTooLarge
from earwitness.evidence.intake import copy_verified, recording_evidence, register_recording
from earwitness.evidence.store import BlobStore
from earwitness.models import Evidence, Recording
from earwitness.recordings.probe import AudioInfo, probe, probe_isolated
from earwitness.recordings.wavfix import needs_channel_repair, read_header, repair_wav_channels

CHUNK = 1 << 20
#: Media type of a stored recording by the container ``probe`` found.
MEDIA_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "mov": "audio/mp4",
    "amr": "audio/amr",
    "webm": "audio/webm",
    "matroska": "audio/webm",
}


def media_type_for(fmt: str | None) -> str:
    return MEDIA_TYPES.get((fmt or "").lower(), "application/octet-stream")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _prepare(path: Path, expected_channels: int | None, workdir: Path) -> tuple[Path, bool]:
    """The file to store: the original, or a header-repaired copy of a MixMonitor WAV."""
    if not expected_channels or expected_channels < 2:
        return path, False
    with path.open("rb") as stream:
        head = stream.read(4096)
    header = read_header(head)
    if header is None:
        return path, False
    size = path.stat().st_size
    header = header.__class__(**{**header.__dict__, "data_size": size - header.data_offset})
    if not needs_channel_repair(header, expected_channels):
        return path, False
    fixed = workdir / "repaired.wav"
    fixed.write_bytes(repair_wav_channels(path, expected_channels))
    return fixed, True


def ingest_file(
    db: Session,
    blobs: BlobStore,
    path: Path,
    *,
    call_id: int | None = None,
    case_id: int | None = None,
    original_name: str | None = None,
    expected_channels: int | None = None,
    max_bytes: int | None = None,
    source_path: str | None = None,
    into: Recording | None = None,
    actor: str | None = None,
    origin: str | None = None,
    note: str = "",
    decode_limits: tuple[float, int] | None = None,
) -> Recording:
    """Probe, store and register one audio file; the same bytes twice give the same row.

    ``decode_limits`` (seconds, MB): probe in a child process under those limits (audio
    from outside, so a hostile file cannot take the calling process down).

    The recording is filed as evidence in the same transaction (one evidence row
    per recording, whatever the number of times its bytes arrive). ``into`` fills
    an existing row (the PBX's ``expected`` row) instead of creating one; ``origin``
    is the evidence ``source`` (``pbx``, ``upload``, ``file`` by default) and
    ``actor`` who received it.

    Raises BadInput (naming the problem) for unusable audio and PayloadTooLarge
    over ``max_bytes``; in both cases nothing is stored. The caller's session
    owns the transaction (commit happens when its unit of work ends).
    """
    path = Path(path)
    name = original_name or path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadInput(f"cannot read {name!r}: {exc.strerror}") from None
    if max_bytes is not None and size > max_bytes:
        raise PayloadTooLarge(f"{name!r} is {size} bytes, over the limit of {max_bytes}")
    with tempfile.TemporaryDirectory(prefix="ew-intake-") as tmp:
        stored, repaired = _prepare(path, expected_channels, Path(tmp))
        if decode_limits is None:
            info = probe(stored, name=name)
        else:
            timeout_s, memory_mb = decode_limits
            info = probe_isolated(stored, name=name, timeout_s=timeout_s, memory_mb=memory_mb)
        sha = _sha256(stored)
        existing = db.scalar(
            select(Recording).where(Recording.sha256 == sha, Recording.state == "ingested")
        )
        if existing is not None and existing is not into:
            existing.call_id = existing.call_id or call_id
            existing.case_id = existing.case_id or case_id
            ensure_recording_evidence(db, existing, actor=actor, origin=origin or "file")
            return existing
        created_blob = not blobs.exists(sha)
        blob = blobs.put_file(stored)
        blobs.discard_on_rollback(db, blob)  # a failed commit leaves no orphan blob either
        try:
            source = source_path if source_path is not None else str(path)
            recording = into if into is not None else Recording()
            _describe(recording, info, blob.sha256, blob.size, name, repaired, source or None)
            recording.call_id = recording.call_id or call_id
            recording.case_id = recording.case_id or case_id
            if expected_channels and expected_channels >= 2 and info.channels < expected_channels:
                recording.error = f"expected {expected_channels} channels, file has {info.channels}"
            db.add(recording)
            db.flush()
            default_origin = "upload" if source_path == "" else "file"
            _register(db, recording, actor=actor, origin=origin or default_origin, note=note)
        except BaseException:
            if created_blob:
                blobs.path(blob.sha256).unlink(missing_ok=True)
            raise
    return recording


def _register(
    db: Session, recording: Recording, *, actor: str | None, origin: str, note: str = ""
) -> Evidence:
    assert recording.sha256 is not None and recording.size_bytes is not None
    return register_recording(
        db,
        recording_id=recording.id,
        case_id=recording.case_id,
        sha256=recording.sha256,
        size_bytes=recording.size_bytes,
        media_type=media_type_for(recording.format),
        original_name=recording.original_name,
        actor=actor,
        source=origin,
        note=note,
        at_intake=recording.created_at,
    )


def ensure_recording_evidence(
    db: Session, recording: Recording, *, actor: str | None = None, origin: str = "backfill"
) -> Evidence | None:
    """The recording's evidence row, filed now if it has none (None without stored audio)."""
    if recording.state != "ingested" or not recording.sha256 or recording.size_bytes is None:
        return None
    existing = recording_evidence(db, recording.id)
    if existing is not None:
        return existing
    return _register(db, recording, actor=actor, origin=origin)


def register_existing_recordings(
    db: Session, recording_ids: Iterable[int] | None = None, *, actor: str | None = "earwitness"
) -> list[int]:
    """Backfill: file every stored recording that has no evidence row yet; ids filed.

    For data dirs from before recordings were evidence. Idempotent and cheap (two
    queries, no file is read or hashed): the hash filed is the one the recording
    was stored under at its intake, so a file altered before the backfill still
    fails ``verify``. ``recording_ids`` limits it to some recordings (a bundle's).
    """
    query = (
        select(Recording)
        .where(Recording.state == "ingested", Recording.sha256.is_not(None))
        .order_by(Recording.id)
    )
    if recording_ids is not None:
        ids = sorted(set(recording_ids))
        if not ids:
            return []
        query = query.where(Recording.id.in_(ids))
    linked = {
        int(rid)
        for rid in db.scalars(
            select(Evidence.meta["recording_id"].as_integer()).where(Evidence.kind == "recording")
        )
        if rid is not None
    }
    filed: list[int] = []
    for recording in db.scalars(query):
        if recording.id in linked or recording.size_bytes is None:
            continue
        _register(db, recording, actor=actor, origin="backfill")
        filed.append(recording.id)
    return filed


def _describe(
    recording: Recording,
    info: AudioInfo,
    sha: str,
    size: int,
    name: str,
    repaired: bool,
    source: str | None,
) -> None:
    recording.state = "ingested"
    recording.source_path = source[:500] if source else None
    recording.sha256 = sha
    recording.size_bytes = size
    recording.format = info.format
    recording.codec = info.codec
    recording.channels = info.channels
    recording.sample_rate = info.sample_rate
    recording.duration_s = info.duration_s
    recording.header_repaired = repaired
    recording.dual_mono = info.dual_mono
    recording.original_name = (recording.original_name or name)[:255]
    recording.error = None


def spool_upload(
    chunks: Iterable[bytes] | BinaryIO, workdir: Path, *, max_bytes: int | None, name: str
) -> Path:
    """Copy an upload stream to a bounded temporary file; PayloadTooLarge past ``max_bytes``."""
    target = workdir / "upload"
    seen = 0
    with target.open("wb") as out:
        source: Iterable[bytes]
        if hasattr(chunks, "read"):
            stream: BinaryIO = chunks  # type: ignore[assignment]
            source = iter(lambda: stream.read(CHUNK), b"")
        else:
            source = chunks
        for chunk in source:
            seen += len(chunk)
            if max_bytes is not None and seen > max_bytes:
                raise PayloadTooLarge(
                    f"{name!r} exceeds the upload limit of {max_bytes} bytes; nothing was stored"
                )
            out.write(chunk)
    return target


def ingest_upload(
    db: Session,
    blobs: BlobStore,
    stream: Iterable[bytes] | BinaryIO,
    *,
    original_name: str,
    call_id: int | None = None,
    case_id: int | None = None,
    expected_channels: int | None = None,
    max_bytes: int | None = None,
    actor: str | None = None,
    note: str = "",
    decode_limits: tuple[float, int] | None = None,
) -> Recording:
    """Like :func:`ingest_file` for a stream (HTTP upload): spooled, checked, then stored."""
    with tempfile.TemporaryDirectory(prefix="ew-upload-") as tmp:
        spooled = spool_upload(stream, Path(tmp), max_bytes=max_bytes, name=original_name)
        return ingest_file(
            db,
            blobs,
            spooled,
            call_id=call_id,
            case_id=case_id,
            original_name=original_name,
            expected_channels=expected_channels,
            source_path="",
            actor=actor,
            origin="upload",
            note=note,
            decode_limits=decode_limits,
        )


def copy_blob_to(blobs: BlobStore, sha: str, target: Path) -> Path:
    """Materialise a stored recording as a file (decoders want a path), checked on the way.

    The copy is hashed as it is written: audio changed since intake raises
    TamperedEvidence instead of being transcribed or scored as if it were the call.
    """
    try:
        with target.open("wb") as out:
            copy_verified(blobs, sha, out, f"recording audio {sha[:12]}…")
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target
