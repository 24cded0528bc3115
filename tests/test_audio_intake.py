"""Audio intake: every format a call centre has, every kind of bad file, and nothing half-stored.

Real files made with sox/ffmpeg/espeak-ng; storage checked on SQLite and PostgreSQL.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select

from earwitness.errors import BadInput, PayloadTooLarge
from earwitness.models import Recording
from earwitness.recordings import ingest_file, ingest_upload, looks_interleaved, probe
from earwitness.recordings.wavfix import read_header, repair_wav_channels
from earwitness.runtime import Runtime


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One short two-voice call in every format, plus broken files."""
    d = tmp_path_factory.mktemp("media")
    _run("espeak-ng", "-v", "en-us", "-w", str(d / "a.wav"), "hello this is the customer speaking")
    _run("espeak-ng", "-v", "en-us+f3", "-w", str(d / "b.wav"), "and this is the agent answering")
    _run("sox", "-G", str(d / "a.wav"), "-r", "8000", str(d / "a8.wav"))
    _run("sox", "-G", str(d / "b.wav"), "-r", "8000", str(d / "b8.wav"))
    _run("sox", "-M", str(d / "a8.wav"), str(d / "b8.wav"), str(d / "stereo.wav"))
    files = {"stereo_wav": d / "stereo.wav", "mono_wav": d / "a8.wav"}
    for name, enc in (("mulaw", "mu-law"), ("alaw", "a-law"), ("gsm", "gsm-full-rate")):
        _run("sox", str(d / "a8.wav"), "-e", enc, str(d / f"{name}.wav"))
        files[name] = d / f"{name}.wav"
    for ext, extra in (
        ("mp3", []),
        ("ogg", ["-c:a", "libopus"]),
        ("flac", []),
        ("m4a", ["-c:a", "aac"]),
    ):
        _run(
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(d / "stereo.wav"),
            *extra,
            str(d / f"s.{ext}"),
        )
        files[ext] = d / f"s.{ext}"
    _run("sox", "-M", str(d / "a8.wav"), str(d / "a8.wav"), str(d / "dual.wav"))
    files["dual_mono"] = d / "dual.wav"
    _run("ffmpeg", "-loglevel", "error", "-y", "-i", str(d / "dual.wav"), str(d / "dual.mp3"))
    files["dual_mono_mp3"] = d / "dual.mp3"
    # broken inputs
    (d / "empty.wav").write_bytes(b"")
    files["empty"] = d / "empty.wav"
    files["zero_length"] = d / "zero.wav"
    files["zero_length"].write_bytes((d / "a8.wav").read_bytes()[:44])
    files["text"] = d / "notes.wav"
    files["text"].write_text("this is a text file, not a recording\n" * 20)
    files["corrupt"] = d / "corrupt.wav"
    files["corrupt"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\xff" * 200)
    silent = d / "silent.wav"
    sf.write(silent, np.zeros((16000, 2), np.float32), 8000, subtype="PCM_16")
    files["silent"] = silent
    return files


@pytest.mark.parametrize(
    ("name", "codec", "channels"),
    [
        ("stereo_wav", "pcm_s16le", 2),
        ("mono_wav", "pcm_s16le", 1),
        ("mulaw", "pcm_mulaw", 1),
        ("alaw", "pcm_alaw", 1),
        ("gsm", "gsm_ms", 1),
        ("mp3", "mp3float", 2),
        ("ogg", "opus", 2),
        ("flac", "flac", 2),
        ("m4a", "aac", 2),
    ],
)
def test_probe_decodes_call_centre_formats(
    media: dict[str, Path], name: str, codec: str, channels: int
) -> None:
    info = probe(media[name])
    assert info.codec == codec
    assert info.channels == channels
    assert 1.5 < info.duration_s < 3.5
    assert not info.dual_mono
    assert info.speech_channels == channels


@pytest.mark.parametrize("name", ["dual_mono", "dual_mono_mp3"])
def test_dual_mono_is_one_speech_channel(media: dict[str, Path], name: str) -> None:
    info = probe(media[name])
    assert info.channels == 2 and info.dual_mono and info.speech_channels == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty", r"is empty \(0 bytes\)"),
        ("zero_length", "no audio samples"),
        ("text", "not an audio file"),
        ("corrupt", "corrupt"),
        ("silent", "is silent"),
    ],
)
def test_bad_audio_is_named(media: dict[str, Path], name: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        probe(media[name])


def _mixmonitor_d(stereo: Path) -> bytes:
    """What MixMonitor ``D`` writes: interleaved stereo samples under a mono header."""
    data = bytearray(stereo.read_bytes())
    header = read_header(bytes(data))
    assert header is not None and header.channels == 2
    struct.pack_into("<HHIIH", data, header.fmt_offset, 1, 1, header.sample_rate,
                     header.sample_rate * 2, 2)  # fmt: skip
    return bytes(data)


def test_mixmonitor_header_repaired_to_stereo(media: dict[str, Path], tmp_path: Path) -> None:
    broken = _mixmonitor_d(media["stereo_wav"])
    assert looks_interleaved(broken)
    assert not looks_interleaved(media["mono_wav"].read_bytes())
    fixed = repair_wav_channels(broken, expected_channels=2)
    assert fixed == media["stereo_wav"].read_bytes()  # only the header changed, back to truth
    assert repair_wav_channels(fixed, 2) == fixed  # idempotent
    path = tmp_path / "fixed.wav"
    path.write_bytes(fixed)
    assert probe(path).channels == 2
    with pytest.raises(BadInput):
        repair_wav_channels(b"not a wav at all", 2)


def _counts(runtime: Runtime) -> tuple[int, int]:
    with runtime.db.session() as session:
        rows = session.scalar(select(func.count()).select_from(Recording)) or 0
    root = runtime.blobs.root
    blobs = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]
    return rows, len(blobs)


def test_ingest_stores_blob_and_row(
    runtime: Runtime, media: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "call-123.wav"
    broken.write_bytes(_mixmonitor_d(media["stereo_wav"]))
    with runtime.db.session() as session:
        rec = ingest_file(session, runtime.blobs, broken, expected_channels=2)
        rid, sha = rec.id, rec.sha256
    with runtime.db.session() as session:
        rec = session.get(Recording, rid)
        assert rec is not None
        assert (rec.state, rec.channels, rec.sample_rate, rec.header_repaired) == (
            "ingested",
            2,
            8000,
            True,
        )
        assert rec.codec == "pcm_s16le" and rec.format == "wav" and not rec.dual_mono
        assert rec.original_name == "call-123.wav" and rec.source_path == str(broken)
    assert sha is not None and runtime.blobs.verify(sha)
    assert runtime.blobs.path(sha).stat().st_mode & 0o222 == 0  # read-only
    # the same bytes again: the same row, no twin
    with runtime.db.session() as session:
        again = ingest_file(session, runtime.blobs, broken, expected_channels=2)
        assert again.id == rid
    with runtime.db.session() as session:
        dual = ingest_file(session, runtime.blobs, media["dual_mono"])
        assert dual.dual_mono and dual.channels == 2
    assert _counts(runtime) == (2, 2)


@pytest.mark.parametrize("name", ["empty", "zero_length", "text", "corrupt", "silent"])
def test_bad_input_leaves_nothing(runtime: Runtime, media: dict[str, Path], name: str) -> None:
    with pytest.raises(BadInput), runtime.db.session() as session:
        ingest_file(session, runtime.blobs, media[name])
    with pytest.raises(BadInput), runtime.db.session() as session, media[name].open("rb") as f:
        ingest_upload(session, runtime.blobs, f, original_name=name)
    assert _counts(runtime) == (0, 0)


def test_oversized_upload_refused_and_nothing_stored(
    runtime: Runtime, media: dict[str, Path]
) -> None:
    size = media["stereo_wav"].stat().st_size
    with pytest.raises(PayloadTooLarge), runtime.db.session() as session:
        ingest_upload(session, runtime.blobs, media["stereo_wav"].open("rb"),
                      original_name="big.wav", max_bytes=size - 1)  # fmt: skip
    with pytest.raises(PayloadTooLarge), runtime.db.session() as session:
        ingest_file(session, runtime.blobs, media["stereo_wav"], max_bytes=1000)
    assert _counts(runtime) == (0, 0)


def test_failed_row_removes_the_new_blob(runtime: Runtime, media: dict[str, Path]) -> None:
    """A database error after the blob was written must not leave an orphan blob."""
    with pytest.raises(Exception), runtime.db.session() as session:  # noqa: B017
        ingest_file(session, runtime.blobs, media["flac"], call_id=999_999)  # no such call: FK
    assert _counts(runtime) == (0, 0)


PBX_RECORDINGS = Path(__file__).parent / "data" / "ami" / "recordings"


def test_real_mixmonitor_file_is_repaired_sample_exact(runtime: Runtime) -> None:
    """Asterisk 22 ``MixMonitor(...,D)`` output (tests/pbx/NOTES.md): mono header, stereo data."""
    raw = PBX_RECORDINGS / "conversation.wav"
    assert probe(raw).channels == 1  # as the header lies
    assert looks_interleaved(raw.read_bytes())
    with runtime.db.session() as session:
        rec = ingest_file(session, runtime.blobs, raw, expected_channels=2)
        assert (rec.channels, rec.header_repaired) == (2, True)
        assert rec.duration_s == pytest.approx(19.98, abs=0.01)
        sha = rec.sha256
    assert sha is not None
    stereo, _ = sf.read(runtime.blobs.path(sha), dtype="int16")
    inbound, _ = sf.read(PBX_RECORDINGS / "conversation-in.wav", dtype="int16")
    outbound, _ = sf.read(PBX_RECORDINGS / "conversation-out.wav", dtype="int16")
    assert np.array_equal(stereo[:, 0], inbound) and np.array_equal(stereo[:, 1], outbound)
