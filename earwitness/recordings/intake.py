"""Take a recording in: check it, store its bytes read-only, record what it is. All or nothing.

Used by the upload API, the CLI and the PBX side (which passes
``expected_channels=2`` because it asked MixMonitor for stereo). The order is
chosen so that a failure leaves no trace: the audio is fully decoded *before*
its bytes go into the blob store, and a blob this call created is removed
again if the database row cannot be written.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.errors import BadInput, PayloadTooLarge
from earwitness.evidence.store import BlobStore
from earwitness.models import Recording
from earwitness.recordings.probe import AudioInfo, probe
from earwitness.recordings.wavfix import needs_channel_repair, read_header, repair_wav_channels

CHUNK = 1 << 20


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
) -> Recording:
    """Probe, store and register one audio file; the same bytes twice give the same row.

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
        info = probe(stored, name=name)
        sha = _sha256(stored)
        existing = db.scalar(
            select(Recording).where(Recording.sha256 == sha, Recording.state == "ingested")
        )
        if existing is not None:
            existing.call_id = existing.call_id or call_id
            existing.case_id = existing.case_id or case_id
            return existing
        created_blob = not blobs.exists(sha)
        blob = blobs.put_file(stored)
        try:
            source = source_path if source_path is not None else str(path)
            recording = _row(info, blob.sha256, blob.size, name, repaired, source or None)
            recording.call_id, recording.case_id = call_id, case_id
            if expected_channels and expected_channels >= 2 and info.channels < expected_channels:
                recording.error = f"expected {expected_channels} channels, file has {info.channels}"
            db.add(recording)
            db.flush()
        except BaseException:
            if created_blob:
                blobs.path(blob.sha256).unlink(missing_ok=True)
            raise
    return recording


def _row(
    info: AudioInfo, sha: str, size: int, name: str, repaired: bool, source: str | None
) -> Recording:
    return Recording(
        state="ingested",
        source_path=source[:500] if source else None,
        sha256=sha,
        size_bytes=size,
        format=info.format,
        codec=info.codec,
        channels=info.channels,
        sample_rate=info.sample_rate,
        duration_s=info.duration_s,
        header_repaired=repaired,
        dual_mono=info.dual_mono,
        original_name=name[:255],
    )


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
        )


def copy_blob_to(blobs: BlobStore, sha: str, target: Path) -> Path:
    """Materialise a stored recording as a file (decoders want a path)."""
    with blobs.open(sha) as src, target.open("wb") as out:
        shutil.copyfileobj(src, out, CHUNK)
    return target
