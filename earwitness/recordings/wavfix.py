"""Repair WAV headers that lie about the channel count (Asterisk MixMonitor ``D``).

MixMonitor with option ``D`` writes interleaved stereo samples (caller left,
agent right) but a header that still says mono, so every player shows a call
of double length with the two voices chopped together. The samples are fine;
only the ``fmt`` chunk is wrong. Rewriting ``channels``, ``byte_rate`` and
``block_align`` restores the recording without touching one audio byte.

Whether a mono header hides stereo cannot be told from the header alone, so the
repair is driven by the channel count the caller *asked the PBX for*
(``expected_channels``). Without that, :func:`looks_interleaved` offers a
signal test (two different voices interleaved sample by sample destroy the
correlation of neighbouring samples but keep it at lag 2) for reporting.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earwitness.errors import BadInput

PCM, ALAW, MULAW, EXTENSIBLE = 1, 6, 7, 0xFFFE


@dataclass(frozen=True)
class WavHeader:
    """The parts of a RIFF/WAVE header that matter here, with byte offsets for rewriting."""

    fmt_offset: int
    audio_format: int
    channels: int
    sample_rate: int
    byte_rate: int
    block_align: int
    bits: int
    data_offset: int
    data_size: int


def read_header(data: bytes) -> WavHeader | None:
    """Parse the ``fmt `` and ``data`` chunks; None when this is not a RIFF/WAVE file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt_offset, fields, data_offset, data_size = 12, -1, None, -1, 0
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt " and size >= 16 and body + 16 <= len(data):  # not truncated
            fmt_offset = body
            fields = struct.unpack_from("<HHIIHH", data, body)
        elif chunk_id == b"data":
            data_offset = body
            # Recorders that crash or stream leave 0 or 0xFFFFFFFF here: trust the file size.
            data_size = min(size, len(data) - body) if size not in (0, 0xFFFFFFFF) else 0
            if data_size == 0:
                data_size = len(data) - body
            break
        pos = body + size + (size & 1)
    if fields is None or data_offset < 0:
        return None
    audio_format, channels, rate, byte_rate, block_align, bits = fields
    return WavHeader(
        fmt_offset,
        audio_format,
        channels,
        rate,
        byte_rate,
        block_align,
        bits,
        data_offset,
        data_size,
    )


def needs_channel_repair(header: WavHeader, expected_channels: int) -> bool:
    """True when a mono header holds whole frames of ``expected_channels`` interleaved samples."""
    if header.audio_format not in (PCM, ALAW, MULAW, EXTENSIBLE):
        return False  # GSM and other block codecs cannot be re-framed by the header
    if header.channels == expected_channels or header.channels != 1 or expected_channels < 2:
        return False
    sample_bytes = max(1, header.bits // 8)
    return header.data_size % (sample_bytes * expected_channels) == 0


def repair_wav_channels(source: Path | bytes, expected_channels: int = 2) -> bytes:
    """The file's bytes with the header fixed to ``expected_channels`` (unchanged if not needed).

    Raises BadInput for a file that is not a WAV at all, so the caller does not
    store something it believes it repaired.
    """
    data = source.read_bytes() if isinstance(source, Path) else bytes(source)
    header = read_header(data)
    if header is None:
        raise BadInput("not a RIFF/WAVE file; cannot repair its channel header")
    if not needs_channel_repair(header, expected_channels):
        return data
    sample_bytes = max(1, header.bits // 8)
    block_align = sample_bytes * expected_channels
    fixed = bytearray(data)
    struct.pack_into(
        "<HHIIH",
        fixed,
        header.fmt_offset,
        header.audio_format,
        expected_channels,
        header.sample_rate,
        header.sample_rate * block_align,
        block_align,
    )
    return bytes(fixed)


def looks_interleaved(data: bytes, *, max_samples: int = 400_000) -> bool:
    """Signal test for 16-bit mono WAV data that is really two interleaved channels.

    Neighbouring samples of one voice are strongly correlated; interleaving two
    different signals moves that correlation from lag 1 to lag 2.
    """
    header = read_header(data)
    if header is None or header.channels != 1 or header.bits != 16 or header.audio_format != PCM:
        return False
    end = header.data_offset + min(header.data_size, 2 * max_samples)
    samples = np.frombuffer(data[header.data_offset : end - (end - header.data_offset) % 2], "<i2")
    x = samples.astype(np.float64)
    x -= x.mean()
    energy = float(np.dot(x, x))
    if len(x) < 1000 or energy == 0.0:
        return False
    lag1 = float(np.dot(x[:-1], x[1:])) / energy
    lag2 = float(np.dot(x[:-2], x[2:])) / energy
    return lag2 > 0.5 and lag2 - lag1 > 0.3
