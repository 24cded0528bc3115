"""Time speech by VAD, not by Whisper's own segment bounds.

Whisper (and faster-whisper's VAD concatenation) lets segment and word times
drift: a segment often "starts" a few hundred milliseconds before the voice,
and after a long pause the first word can be placed in the silence. QA
measures interruptions and dead air from these times, so each word is clamped
into the speech region (silero VAD, tight padding) it belongs to, and a
segment that spans a silence longer than ``split_gap_s`` is split there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from earwitness.transcription.types import SegmentOut, SpeechRegion, WordOut

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class TimingOptions:
    """VAD for timing: tight padding so bounds sit on the voice itself."""

    threshold: float = 0.5
    min_silence_ms: int = 250
    min_speech_ms: int = 120
    pad_ms: int = 30
    split_gap_s: float = 0.6
    snap_s: float = 0.6  # how far a segment edge may move onto the VAD bound


def speech_regions(audio: np.ndarray, options: TimingOptions | None = None) -> list[SpeechRegion]:
    """Silero VAD (the ONNX model faster-whisper ships) over 16 kHz mono audio."""
    opts = options or TimingOptions()
    if audio.size == 0:
        return []
    stamps = get_speech_timestamps(
        audio,
        VadOptions(
            threshold=opts.threshold,
            min_silence_duration_ms=opts.min_silence_ms,
            min_speech_duration_ms=opts.min_speech_ms,
            speech_pad_ms=opts.pad_ms,
        ),
    )
    return [SpeechRegion(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def speech_overlap(start: float, end: float, regions: list[SpeechRegion]) -> float:
    """Seconds of [start, end] covered by speech regions."""
    return sum(max(0.0, min(end, r.end) - max(start, r.start)) for r in regions)


def _clamp_word(word: WordOut, regions: list[SpeechRegion], next_start: float | None) -> WordOut:
    """Put a word inside speech.

    A word mostly in silence whose *next* word lies in a later speech region is
    moved to that region: Whisper stretches the first word after a pause back
    into the silence.
    """
    hits = [r for r in regions if r.end > word.start and r.start < word.end]
    duration = max(word.end - word.start, 1e-3)
    inside = speech_overlap(word.start, word.end, hits) / duration
    later = [r for r in regions if r.start > word.start]
    moves_on = bool(later) and (next_start is None or next_start >= later[0].start - 0.05)
    if hits and (inside >= 0.5 or not moves_on):
        start = max(word.start, hits[0].start)
        end = min(word.end, hits[-1].end)
        if end <= start:  # touches speech only at a point: keep it inside that region
            end = min(hits[-1].end, start + 0.05)
        return WordOut(start, end, word.word, word.probability)
    if later and moves_on:
        target = later[0]
        length = min(word.end - word.start, target.end - target.start)
        return WordOut(target.start, target.start + length, word.word, word.probability)
    target = min(regions, key=lambda r: abs(r.end - word.start))
    length = min(word.end - word.start, target.end - target.start)
    start = max(target.start, target.end - length)
    return WordOut(start, start + length, word.word, word.probability)


def _region_of(t: float, regions: list[SpeechRegion]) -> SpeechRegion | None:
    return next((r for r in regions if r.start - 1e-6 <= t <= r.end + 1e-6), None)


def _snap(group: list[WordOut], regions: list[SpeechRegion], opts: TimingOptions) -> None:
    """Move the group's outer edges onto the voice: Whisper ends words early."""
    first = _region_of(group[0].start, regions)
    if first is not None and group[0].start - first.start <= opts.snap_s:
        group[0].start = first.start
    last = _region_of(group[-1].end, regions)
    if last is not None and last.end - group[-1].end <= opts.snap_s:
        group[-1].end = last.end


def retime(
    segment: SegmentOut, regions: list[SpeechRegion], opts: TimingOptions
) -> list[SegmentOut]:
    """Clamp the segment's words into speech and split it at long silences."""
    if not regions:
        return []
    if not segment.words:
        hits = [r for r in regions if r.end > segment.start and r.start < segment.end]
        if not hits:
            return []
        segment.start = max(segment.start, hits[0].start)
        segment.end = min(segment.end, hits[-1].end)
        return [segment]
    nexts: list[float | None] = [w.start for w in segment.words[1:]]
    words = [_clamp_word(w, regions, n) for w, n in zip(segment.words, [*nexts, None], strict=True)]
    for prev, cur in zip(words, words[1:], strict=False):  # keep words monotonic
        if cur.start < prev.end:
            cur.start = min(prev.end, cur.end)
    groups: list[list[WordOut]] = [[words[0]]]
    for word in words[1:]:
        gap = word.start - groups[-1][-1].end
        silence = gap - speech_overlap(groups[-1][-1].end, word.start, regions)
        if silence >= opts.split_gap_s:
            groups.append([word])
        else:
            groups[-1].append(word)
    out = []
    for group in groups:
        _snap(group, regions, opts)
        text = _join_words(group)
        if not text:
            continue
        out.append(
            SegmentOut(
                start=group[0].start,
                end=max(w.end for w in group),
                text=text,
                channel=segment.channel,
                speaker=segment.speaker,
                role=segment.role,
                language=segment.language,
                avg_logprob=segment.avg_logprob,
                words=group,
            )
        )
    return out


def _join_words(words: list[WordOut]) -> str:
    """Whisper words carry their own leading spaces (none for Chinese)."""
    return "".join(w.word for w in words).strip()
