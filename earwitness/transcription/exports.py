"""Transcript exports: JSON (everything), SRT and VTT (players), TXT (reading), RTTM (scoring).

Exports take plain segment data (:class:`SegmentOut`) so the API, the CLI and
tests render the same text from a stored transcript or a fresh run. Words the
recogniser was unsure of are marked in every format (:mod:`confidence`): ``[?…?]``
in the text formats, ``low_confidence`` fields in JSON, so an investigator knows
what to check against the audio.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from earwitness.errors import BadInput
from earwitness.transcription.confidence import is_low, low_spans, marked_text, segment_confidence
from earwitness.transcription.types import SegmentOut

FORMATS = {
    "json": "application/json",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "txt": "text/plain",
    "rttm": "text/plain",
}


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _who(seg: SegmentOut) -> str:
    return seg.role if seg.role != "unknown" else (seg.speaker or "speaker")


def to_srt(segments: Iterable[SegmentOut]) -> str:
    blocks = [
        f"{i}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n[{_who(s)}] {marked_text(s)}\n"
        for i, s in enumerate(segments, 1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Iterable[SegmentOut]) -> str:
    blocks = [
        f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n<v {_who(s)}>{marked_text(s)}\n"
        for s in segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_txt(segments: Iterable[SegmentOut]) -> str:
    return "".join(f"[{_stamp(s.start, '.')}] {_who(s)}: {marked_text(s)}\n" for s in segments)


def to_rttm(segments: Iterable[SegmentOut], file_id: str = "recording") -> str:
    """NIST RTTM speaker lines (speaker = role when known, so scoring tools read roles)."""
    safe = file_id.replace(" ", "_") or "recording"
    lines = []
    for s in segments:
        duration = max(s.end - s.start, 0)
        lines.append(
            f"SPEAKER {safe} 1 {s.start:.3f} {duration:.3f} <NA> <NA> {_who(s)} <NA> <NA>\n"
        )
    return "".join(lines)


def to_json(segments: Iterable[SegmentOut], meta: dict[str, Any] | None = None) -> str:
    body = {
        **(meta or {}),
        "segments": [
            {
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "speaker": s.speaker,
                "role": s.role,
                "channel": s.channel,
                "language": s.language,
                "text": s.text,
                "inaudible": s.inaudible,
                "confidence": segment_confidence(s),
                "avg_logprob": s.avg_logprob,
                "low_confidence_spans": [
                    {
                        "start": round(span.start, 3),
                        "end": round(span.end, 3),
                        "text": span.text,
                        "min_probability": round(span.min_probability, 4),
                    }
                    for span in low_spans(s)
                ],
                "words": [
                    {
                        "start": round(w.start, 3),
                        "end": round(w.end, 3),
                        "word": w.word,
                        "probability": w.probability,
                        "low_confidence": is_low(w),
                    }
                    for w in s.words
                ],
            }
            for s in segments
        ],
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


def render(
    fmt: str, segments: list[SegmentOut], *, meta: dict[str, Any] | None = None, file_id: str = ""
) -> str:
    """Render ``segments`` in ``fmt``; BadInput names the supported formats otherwise."""
    fmt = fmt.lower()
    if fmt == "json":
        return to_json(segments, meta)
    if fmt == "srt":
        return to_srt(segments)
    if fmt == "vtt":
        return to_vtt(segments)
    if fmt == "txt":
        return to_txt(segments)
    if fmt == "rttm":
        return to_rttm(segments, file_id or "recording")
    raise BadInput(f"unknown transcript format {fmt!r}; use one of {', '.join(FORMATS)}")
