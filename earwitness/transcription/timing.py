"""Where speech is, how it is cut for decoding, and where a transcript's words sit in time.

Why decode speech, not channels: faster-whisper given a whole 8 kHz channel with its
own VAD (``vad_filter=True``) concatenates the speech, decodes 30 s windows and maps
times back; on real calls it returned nothing for a 12-second utterance, or one segment
placed seconds away from the voice, while the same region decoded alone came back in
full (measured, ``benchmarks/bench_speech.py``). So a stream is cut at silero VAD
boundaries, neighbouring speech regions are joined (silence removed) into *chunks* of at
most ``max_chunk_s`` of speech (WhisperX's cut & merge: the model still hears several
utterances together, which measurably helps Mandarin), each chunk is decoded on its own,
and every word is mapped back from its place in the chunk to the region it was said in.

Two VAD passes with different purposes:

- *decode regions* (faster-whisper's own VAD defaults: split at 2 s pauses, padded 400 ms;
  a tighter cut, 500 ms / 200 ms, made Mandarin CER worse): what the recogniser hears;
- *voice regions* (tight, 30 ms padding): the evidence that someone spoke. Every voice
  region of at least ``min_voiced_s`` must end up covered by words or by an explicit
  ``[inaudible]`` segment (:func:`uncovered_regions`), never by silence.

Both passes read the same silero speech probabilities (only the thresholds, pauses and
padding differ), so :func:`stream_regions` runs the model once for both (:class:`_VadReuse`):
that model pass was ~10 % of a stereo call's time, run twice per channel (issue 17).

Everything here is pure (plain numbers in, plain data out) except :func:`speech_regions` and
:func:`stream_regions`, which run the ONNX VAD model faster-whisper ships.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import faster_whisper.vad
import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from earwitness.transcription.types import SegmentOut, SpeechRegion, WordOut

SAMPLE_RATE = 16000
#: the shortest a placed word may be (a word clamped onto a region edge would be 0 s long)
MIN_WORD_S = 0.01


@dataclass(frozen=True)
class TimingOptions:
    """VAD and chunking parameters; recorded with every transcript."""

    threshold: float = 0.5
    #: tight VAD: the evidence of voice (QA timing and the inaudible check use it)
    voice_min_silence_ms: int = 250
    voice_min_speech_ms: int = 120
    voice_pad_ms: int = 30
    #: decode VAD: what the recogniser is given
    decode_min_silence_ms: int = 2000
    decode_pad_ms: int = 400
    #: a chunk never holds more speech than Whisper's 30 s window
    max_chunk_s: float = 30.0
    #: a voice region at least this long with no word on it becomes ``[inaudible]``
    min_voiced_s: float = 0.5
    #: words farther apart than this, with no voice between them, start a new segment
    split_gap_s: float = 0.6
    #: a segment edge moves onto the voice edge when that edge is at most this far
    snap_s: float = 0.8
    #: voice edges extend over frames this far above the noise floor (see refine_by_energy)
    energy_margin_db: float = 6.0
    energy_extend_s: float = 0.5

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Chunk:
    """Speech regions decoded together: their audio is joined with the silences cut out."""

    regions: tuple[SpeechRegion, ...]

    @property
    def start(self) -> float:
        return self.regions[0].start

    @property
    def end(self) -> float:
        return self.regions[-1].end

    @property
    def speech_s(self) -> float:
        return sum(r.end - r.start for r in self.regions)

    def audio(self, stream: np.ndarray) -> np.ndarray:
        """The chunk's samples: its regions back to back."""
        return np.concatenate(
            [
                stream[round(r.start * SAMPLE_RATE) : round(r.end * SAMPLE_RATE)]
                for r in self.regions
            ]
        )

    def piece_at(self, t: float) -> int:
        """Index of the region holding chunk time ``t`` (seconds into the joined audio)."""
        offset = 0.0
        for i, region in enumerate(self.regions):
            offset += region.end - region.start
            if t < offset:
                return i
        return len(self.regions) - 1

    def to_stream(self, t: float, piece: int) -> float:
        """Chunk time → stream time, clamped into region ``piece``."""
        before = sum(r.end - r.start for r in self.regions[:piece])
        region = self.regions[piece]
        return min(max(region.start + (t - before), region.start), region.end)


def speech_regions(
    audio: np.ndarray,
    options: TimingOptions | None = None,
    *,
    purpose: str = "voice",
) -> list[SpeechRegion]:
    """Silero VAD (the ONNX model faster-whisper ships) over 16 kHz mono audio.

    ``purpose="voice"`` gives tight regions (evidence of speech), ``"decode"`` the
    padded regions the recogniser hears, split so that none is longer than a chunk.
    """
    opts = options or TimingOptions()
    if audio.size == 0:
        return []
    if purpose == "decode":
        vad = VadOptions(
            threshold=opts.threshold,
            min_silence_duration_ms=opts.decode_min_silence_ms,
            speech_pad_ms=opts.decode_pad_ms,
            max_speech_duration_s=opts.max_chunk_s,
        )
    else:
        vad = VadOptions(
            threshold=opts.threshold,
            min_silence_duration_ms=opts.voice_min_silence_ms,
            min_speech_duration_ms=opts.voice_min_speech_ms,
            speech_pad_ms=opts.voice_pad_ms,
        )
    stamps = get_speech_timestamps(audio, vad)
    regions = [SpeechRegion(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]
    return regions if purpose == "decode" else refine_by_energy(audio, regions, opts)


def stream_regions(
    audio: np.ndarray, options: TimingOptions | None = None
) -> tuple[list[SpeechRegion], list[SpeechRegion]]:
    """``(voice, decode)`` regions of a stream: both :func:`speech_regions` passes, equal to
    them, from one run of the VAD model."""
    opts = options or TimingOptions()
    if audio.size == 0:
        return [], []
    reuse = _VadReuse.installed()
    # the padding faster-whisper's get_speech_timestamps applies before running the model
    padded = np.pad(audio, (0, _VAD_WINDOW - audio.shape[0] % _VAD_WINDOW))
    with reuse.pinned(padded, reuse.model(padded)):
        return speech_regions(audio, opts), speech_regions(audio, opts, purpose="decode")


_VAD_WINDOW = 512  # samples per silero probability (faster_whisper.vad)


class _VadReuse:
    """Hands silero probabilities, computed once, to ``get_speech_timestamps``.

    That function runs the model and applies the thresholds in one call; this stands in
    for the model it gets from ``faster_whisper.vad.get_vad_model``: while a padded stream
    is *pinned* (per thread, so concurrent channels do not mix), running the model on
    exactly that audio returns the pinned probabilities. The audio is compared in full,
    so any other input is run through the model as before and the regions cannot differ.
    """

    def __init__(self, model: Callable[[np.ndarray], np.ndarray]) -> None:
        self.model = model
        self._local = threading.local()

    @staticmethod
    @cache
    def installed() -> _VadReuse:
        original = faster_whisper.vad.get_vad_model
        reuse = _VadReuse(original())
        faster_whisper.vad.get_vad_model = lambda: reuse  # looked up on every call there
        return reuse

    def __call__(self, audio: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        pinned = getattr(self._local, "pinned", None)
        if pinned is not None and not args and not kwargs and np.array_equal(pinned[0], audio):
            return np.asarray(pinned[1])
        return self.model(audio, *args, **kwargs)

    @contextmanager
    def pinned(self, audio: np.ndarray, probabilities: np.ndarray) -> Iterator[None]:
        self._local.pinned = (audio, probabilities)
        try:
            yield
        finally:
            self._local.pinned = None


def plan_chunks(regions: list[SpeechRegion], options: TimingOptions) -> list[Chunk]:
    """Join consecutive decode regions into chunks of at most ``max_chunk_s`` of speech."""
    chunks: list[list[SpeechRegion]] = []
    total = 0.0
    for region in sorted(regions, key=lambda r: r.start):
        length = region.end - region.start
        if chunks and total + length <= options.max_chunk_s:
            chunks[-1].append(region)
            total += length
        else:
            chunks.append([region])
            total = length
    return [Chunk(tuple(c)) for c in chunks]


def speech_overlap(start: float, end: float, regions: list[SpeechRegion]) -> float:
    """Seconds of [start, end] covered by speech regions."""
    return sum(max(0.0, min(end, r.end) - max(start, r.start)) for r in regions)


def uncovered_regions(
    voice: list[SpeechRegion],
    words: list[WordOut],
    options: TimingOptions,
    tolerance_s: float = 0.25,
) -> list[SpeechRegion]:
    """Voice regions of at least ``min_voiced_s`` that no word touches (± tolerance)."""
    out = []
    for region in voice:
        if region.end - region.start < options.min_voiced_s:
            continue
        lo, hi = region.start - tolerance_s, region.end + tolerance_s
        if not any(w.end > lo and w.start < hi for w in words):
            out.append(region)
    return out


def place_words(words: list[WordOut], chunk: Chunk) -> list[WordOut]:
    """Map words from chunk time to stream time, in order (times never run backwards).

    A word belongs to the region holding its midpoint and is clamped into it, so no
    word spans the silence that was cut out between two regions.
    """
    placed: list[WordOut] = []
    for w in words:
        piece = chunk.piece_at((w.start + w.end) / 2)
        start, end = chunk.to_stream(w.start, piece), chunk.to_stream(w.end, piece)
        if placed and start < placed[-1].end:
            start = placed[-1].end
        # a word squeezed onto a region's edge keeps a minimal length (never 0 s long)
        end = max(end, start + MIN_WORD_S)
        placed.append(WordOut(start, end, w.word, w.probability))
    return placed


def split_segment(
    segment: SegmentOut, voice: list[SpeechRegion], options: TimingOptions
) -> list[SegmentOut]:
    """Cut a segment where its words are separated by a silence of ``split_gap_s`` or more.

    Segment bounds come from its words (edges are moved later, with the neighbours
    known, by :func:`snap_edges`).
    """
    if not segment.words:
        return [segment]
    groups: list[list[WordOut]] = [[segment.words[0]]]
    for word in segment.words[1:]:
        prev_end = groups[-1][-1].end
        silence = (word.start - prev_end) - speech_overlap(prev_end, word.start, voice)
        if silence >= options.split_gap_s:
            groups.append([word])
        else:
            groups[-1].append(word)
    out = []
    for group in groups:
        text = "".join(w.word for w in group).strip()
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


def snap_edges(
    segments: list[SegmentOut], voice: list[SpeechRegion], snap_s: float
) -> list[SegmentOut]:
    """Move segment edges onto the voice they sit in; words are kept inside their segment.

    Whisper starts an utterance's first word late and ends its last word early. A segment
    that is the first of its voice region starts at the region's onset, and the last one
    ends at the region's end, when that edge is at most ``snap_s`` away. Edges between two
    segments of one region (Whisper's own split) stay where the words put them.
    Segments of one stream in, sorted by time out.
    """
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    for i, seg in enumerate(ordered):
        if seg.inaudible:
            continue
        prev_end = ordered[i - 1].end if i else -1.0
        next_start = ordered[i + 1].start if i + 1 < len(ordered) else float("inf")
        region = _region_at(seg.start, voice, snap_s)
        if (
            region is not None
            and prev_end <= region.start < seg.end - MIN_WORD_S
            and abs(seg.start - region.start) <= snap_s
        ):
            seg.start = region.start
        region = _region_at(seg.end, voice, snap_s)
        if (
            region is not None
            and next_start >= region.end > seg.start + MIN_WORD_S
            and abs(region.end - seg.end) <= snap_s
        ):
            seg.end = region.end
        for word in seg.words:  # a word cannot start before the voice its segment starts on
            word.start = min(max(word.start, seg.start), seg.end - MIN_WORD_S)
            word.end = min(max(word.end, word.start + MIN_WORD_S), seg.end)
    return ordered


def _region_at(t: float, voice: list[SpeechRegion], slack: float) -> SpeechRegion | None:
    """The voice region holding ``t``, or one ending/starting within ``slack`` of it."""
    inside = [r for r in voice if r.start <= t <= r.end]
    if inside:
        return inside[0]
    near = [r for r in voice if min(abs(r.start - t), abs(r.end - t)) <= slack]
    return min(near, key=lambda r: min(abs(r.start - t), abs(r.end - t))) if near else None


def refine_by_energy(
    audio: np.ndarray, regions: list[SpeechRegion], options: TimingOptions
) -> list[SpeechRegion]:
    """Extend each VAD region outwards to where the speech energy really starts and ends.

    Silero decides "speech" a few frames into a word (its onsets were 0.1–0.3 s late on
    real telephone speech), while a word begins where its energy rises above the noise
    floor. Each edge walks outwards over 10 ms frames whose level is more than
    ``energy_margin_db`` above the stream's noise floor (10th percentile of frame levels),
    at most ``energy_extend_s``, never into a neighbouring region.
    """
    frame = SAMPLE_RATE // 100
    n = len(audio) // frame
    if n == 0 or not regions:
        return regions
    frames = audio[: n * frame].reshape(n, frame).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = level > np.percentile(level, 10) + options.energy_margin_db
    limit = int(options.energy_extend_s * 100)
    out: list[SpeechRegion] = []
    for i, region in enumerate(regions):
        lo_bound = int(out[-1].end * 100) if out else 0
        hi_bound = int(regions[i + 1].start * 100) if i + 1 < len(regions) else n
        start, end = int(region.start * 100), min(int(region.end * 100), n)
        floor_start = max(lo_bound, start - limit)
        while start - 1 >= floor_start and loud[start - 1]:
            start -= 1
        ceil_end = min(hi_bound, end + limit)
        while end < ceil_end and loud[end]:
            end += 1
        out.append(SpeechRegion(min(start / 100, region.start), max(end / 100, region.end)))
    return out
