"""Decode any call-centre audio with PyAV and say what it is, or why it is unusable.

Intake refuses bad audio *before* anything is stored, so the checks here are
the ones a person would otherwise discover hours later in a failed job: the
file is empty, truncated, not audio at all, has no samples, or is pure
silence. It also recognises "dual-mono" stereo (both channels carry the same
mix), which must be transcribed as one channel, not as two speakers.

Statistics are accumulated while decoding in blocks, so a long recording is
never held in memory as a whole here. Audio from outside goes through
:func:`probe_isolated`: the same decode in a child process with time and memory limits.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from earwitness.errors import BadInput

#: Peak below this (≈ -60 dBFS) on every channel counts as silence.
SILENCE_PEAK = 1e-3
#: Energy of (left - right) relative to the louder channel under which the
#: channels are the same signal; -30 dB tolerates lossy joint-stereo coding.
DUAL_MONO_RATIO = 1e-3

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"RIFF", "WAV"),
    (b"ID3", "MP3"),
    (b"\xff\xfb", "MP3"),
    (b"\xff\xf3", "MP3"),
    (b"\xff\xf2", "MP3"),
    (b"fLaC", "FLAC"),
    (b"OggS", "OGG"),
    (b"#!AMR", "AMR"),
)


@dataclass(frozen=True)
class AudioInfo:
    """What intake records about a recording (``channels`` as stored in the file)."""

    format: str
    codec: str
    channels: int
    sample_rate: int
    duration_s: float
    dual_mono: bool = False
    channel_peaks: tuple[float, ...] = field(default=())

    @property
    def speech_channels(self) -> int:
        """Channels to transcribe separately: 1 for mono and dual-mono, else ``channels``."""
        return 1 if self.dual_mono else self.channels

    @property
    def silent_channels(self) -> tuple[int, ...]:
        return tuple(i for i, peak in enumerate(self.channel_peaks) if peak < SILENCE_PEAK)


def _sniff(path: Path) -> str | None:
    with path.open("rb") as stream:
        head = stream.read(12)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "M4A"
    return None


def _label(path: Path, name: str | None) -> str:
    return repr(name or path.name)


class _Stats:
    """Running per-channel peak and energy plus the energy of the channel difference."""

    def __init__(self, channels: int) -> None:
        self.frames = 0
        self.peak = np.zeros(channels)
        self.energy = np.zeros(channels)
        self.diff_energy = 0.0

    def add(self, block: np.ndarray) -> None:
        # block: (channels, n) float32
        self.frames += block.shape[1]
        self.peak = np.maximum(self.peak, np.abs(block).max(axis=1))
        self.energy += np.square(block, dtype=np.float64).sum(axis=1)
        if block.shape[0] >= 2:
            self.diff_energy += float(np.square(block[0] - block[1], dtype=np.float64).sum())


def probe(path: Path, *, name: str | None = None) -> AudioInfo:
    """Decode the whole file once; raise BadInput naming the problem if it is unusable."""
    label = _label(path, name)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadInput(f"cannot read {label}: {exc.strerror}") from None
    if size == 0:
        raise BadInput(f"{label} is empty (0 bytes)")
    kind = _sniff(path)
    try:
        container = av.open(str(path))
    except MemoryError:  # FFmpeg's ENOMEM (av.error.MemoryError): no corrupt file
        raise
    except av.error.FFmpegError:
        if kind:
            raise BadInput(f"{label} looks like {kind} but is corrupt and cannot be read") from None
        raise BadInput(f"{label} is not an audio file (unrecognised format)") from None
    with container:
        if not container.streams.audio:
            raise BadInput(f"{label} has no audio stream")
        stream = container.streams.audio[0]
        channels = stream.channels or 0
        rate = stream.rate or stream.sample_rate or 0
        codec = stream.codec_context.name
        fmt = (kind or container.format.name.split(",")[0]).lower()
        if channels < 1 or rate < 1:
            raise BadInput(f"{label} declares {channels} channel(s) at {rate} Hz")
        stats = _Stats(channels)
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    stats.add(out.to_ndarray().reshape(channels, -1))
            for out in resampler.resample(None):
                stats.add(out.to_ndarray().reshape(channels, -1))
        except MemoryError:
            raise
        except (av.error.FFmpegError, ValueError) as exc:
            done = stats.frames / rate
            raise BadInput(
                f"{label} is corrupt: decoding failed after {done:.1f} s ({exc})"
            ) from None
    if stats.frames == 0:
        raise BadInput(f"{label} contains no audio samples (zero length)")
    peaks = tuple(float(p) for p in stats.peak)
    if max(peaks) < SILENCE_PEAK:
        raise BadInput(
            f"{label} is silent (peak {20 * np.log10(max(max(peaks), 1e-10)):.0f} dBFS); "
            "there is nothing to transcribe"
        )
    dual = bool(channels == 2 and stats.diff_energy <= DUAL_MONO_RATIO * float(stats.energy.max()))
    return AudioInfo(
        format=fmt,
        codec=codec,
        channels=channels,
        sample_rate=int(rate),
        duration_s=round(stats.frames / rate, 3),
        dual_mono=dual,
        channel_peaks=peaks,
    )


def decode_channels(path: Path, *, sample_rate: int = 16000) -> np.ndarray:
    """All channels resampled to ``sample_rate`` as float32 ``(channels, n)``.

    The speech models want 16 kHz mono per channel; decoding once and slicing
    keeps a stereo call to a single pass over the file.
    """
    try:
        container = av.open(str(path))
    except MemoryError:
        raise
    except av.error.FFmpegError as exc:
        raise BadInput(f"cannot decode {path.name}: {exc}") from None
    with container:
        stream = container.streams.audio[0]
        channels = stream.channels or 1
        # 16-bit planar, scaled as faster-whisper's own decode_audio does: the recogniser
        # then hears exactly the samples plain faster-whisper would (a float resampler
        # differs by one LSB here and there, and that alone changed decoded characters).
        resampler = av.AudioResampler(format="s16p", layout=stream.layout, rate=sample_rate)
        blocks: list[np.ndarray] = []
        for frame in container.decode(stream):
            blocks.extend(o.to_ndarray().reshape(channels, -1) for o in resampler.resample(frame))
        blocks.extend(o.to_ndarray().reshape(channels, -1) for o in resampler.resample(None))
    if not blocks:
        return np.zeros((channels, 0), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32) / 32768.0


def _probe_child(conn: Any, path: str, name: str | None, memory_mb: int) -> None:
    """Runs in a forked child: cap the address space, decode, send the verdict back."""
    import errno
    import resource

    # PyAV loads its stream modules on first use; under the cap that load itself fails
    # (ENOMEM mapping the .so), which would read as a decoder fault, so load them first.
    import av.audio.stream  # noqa: F401
    import av.subtitles.stream  # noqa: F401
    import av.video.stream  # noqa: F401

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        info = probe(Path(path), name=name)
        conn.send(("ok", asdict(info)))
    except BadInput as exc:
        conn.send(("bad", exc.detail))
    except MemoryError:
        conn.send(("memory", ""))
    except OSError as exc:  # the cap also surfaces as ENOMEM (e.g. a lazy import failing)
        if exc.errno != errno.ENOMEM:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            conn.send(("memory", ""))
    except Exception as exc:  # a decoder bug: reported, never raised in the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def probe_isolated(
    path: Path, *, name: str | None = None, timeout_s: float = 120.0, memory_mb: int = 1024
) -> AudioInfo:
    """:func:`probe` in a child process with a time and an address-space limit.

    For audio from outside (HTTP uploads): a file that makes FFmpeg spin, eat memory or
    crash takes down a throw-away child, not the API process; the upload is refused with
    a 4xx naming the limit. Children come from a fork server that has the decoder
    imported already, so each probe costs a fork, not an interpreter start.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["earwitness.recordings.probe"])
    label = _label(Path(path), name)
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_probe_child, args=(sender, str(path), name, memory_mb), daemon=True)
    proc.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise BadInput(
                f"{label}: decoding took longer than {timeout_s:g} s and was stopped; "
                "nothing was stored"
            )
        try:
            verdict, value = receiver.recv()
        except EOFError:
            proc.join(5)
            raise BadInput(
                f"{label}: the decoder crashed (exit {proc.exitcode}); nothing was stored"
            ) from None
    finally:
        receiver.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    if verdict == "ok":
        value["channel_peaks"] = tuple(value["channel_peaks"])
        return AudioInfo(**value)
    if verdict == "bad":
        raise BadInput(value)
    if verdict == "memory":
        raise BadInput(
            f"{label}: decoding needed more than {memory_mb} MB and was stopped; nothing was stored"
        )
    raise BadInput(f"{label}: the decoder failed ({value}); nothing was stored")
