"""Who spoke when: exact for stereo (channel = speaker), estimated for a mono mix.

Stereo needs no model: MixMonitor records caller and agent on their own
channels, so the channel *is* the speaker. For mono (a dual-mono file, an
uploaded mix) a :class:`MonoDiarizer` backend estimates turns:

- ``encoder`` (default): silero VAD (shipped with faster-whisper) → 1.6 s
  partial windows → the resemblyzer GE2E speaker encoder run in numpy
  (:mod:`voice_encoder`) → spherical k-means (a call has two parties; one
  speaker is kept when the two centroids are too alike) → label smoothing.
  Measured against the alternatives in ``benchmarks/README.md``.
- ``pyannote``: a pyannote.audio pipeline from a local directory (extra
  ``[pyannote]``), see :mod:`pyannote_backend`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from earwitness.transcription.timing import SAMPLE_RATE, speech_regions
from earwitness.transcription.types import SegmentOut, SpeechRegion, Turn, WordOut
from earwitness.transcription.voice_encoder import (
    PARTIAL_FRAMES,
    load_encoder,
    mel_frames,
    normalise_volume,
)


@dataclass
class Diarization:
    """Turns plus, when the backend has them, one voice embedding per speaker."""

    turns: list[Turn]
    backend: str
    params: dict[str, Any] = field(default_factory=dict)
    centroids: dict[str, np.ndarray] = field(default_factory=dict)


class MonoDiarizer(Protocol):
    """A backend that finds speaker turns in 16 kHz mono audio."""

    name: str

    def diarize(self, audio: np.ndarray, *, num_speakers: int | None = None) -> Diarization: ...


@dataclass
class EncoderDiarizer:
    """VAD + GE2E embeddings + k-means; hyper-parameters are recorded with each result."""

    name: str = "encoder"
    hop_s: float = 0.4
    max_speakers: int = 2
    same_speaker_similarity: float = 0.85
    smooth: int = 3
    seed: int = 0

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """One unit-length voice embedding for a stretch of speech (enrolment, roles)."""
        frames = self._partials(audio, 0.0)[1]
        if len(frames) == 0:
            return np.zeros(256, np.float32)
        mean = load_encoder().embed(frames).mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-8)

    def _partials(self, audio: np.ndarray, offset: float) -> tuple[list[float], np.ndarray]:
        mels = mel_frames(normalise_volume(audio))
        hop = max(1, int(self.hop_s * 100))
        if len(mels) < PARTIAL_FRAMES:
            if len(mels) < 30:  # under 0.3 s: no usable voice print
                return [], np.zeros((0, PARTIAL_FRAMES, 40), np.float32)
            mels = np.pad(mels, ((0, PARTIAL_FRAMES - len(mels)), (0, 0)))
        starts = list(range(0, len(mels) - PARTIAL_FRAMES + 1, hop)) or [0]
        centres = [offset + (s + PARTIAL_FRAMES / 2) / 100 for s in starts]
        return centres, np.stack([mels[s : s + PARTIAL_FRAMES] for s in starts])

    def diarize(self, audio: np.ndarray, *, num_speakers: int | None = None) -> Diarization:
        regions = speech_regions(audio)
        params = {
            "hop_s": self.hop_s,
            "max_speakers": self.max_speakers,
            "same_speaker_similarity": self.same_speaker_similarity,
            "smooth": self.smooth,
        }
        centres: list[float] = []
        batches: list[np.ndarray] = []
        for region in regions:
            chunk = audio[int(region.start * SAMPLE_RATE) : int(region.end * SAMPLE_RATE)]
            c, frames = self._partials(chunk, region.start)
            centres.extend(c)
            batches.append(frames)
        if not centres:
            return Diarization([], self.name, params)
        emb = np.concatenate([load_encoder().embed(b) for b in batches if len(b)])
        labels, centroids = self._cluster(emb, num_speakers)
        labels = _smooth(labels, self.smooth)
        turns = _turns_from_partials(regions, np.array(centres), labels)
        return Diarization(turns, self.name, params, {f"S{k}": c for k, c in enumerate(centroids)})

    def _cluster(self, emb: np.ndarray, num_speakers: int | None) -> tuple[np.ndarray, np.ndarray]:
        k = num_speakers or self.max_speakers
        if k <= 1 or len(emb) < 2:
            return np.zeros(len(emb), int), _unit(emb.mean(axis=0, keepdims=True))
        labels, centroids = spherical_kmeans(emb, k, seed=self.seed)
        if (
            num_speakers is None
            and k == 2
            and float(centroids[0] @ centroids[1]) > (self.same_speaker_similarity)
        ):
            return np.zeros(len(emb), int), _unit(emb.mean(axis=0, keepdims=True))
        # name speakers in order of first appearance: S0 speaks first
        order = list(dict.fromkeys(labels.tolist()))
        remap = {old: new for new, old in enumerate(order)}
        return np.array([remap[x] for x in labels]), centroids[order]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


def spherical_kmeans(
    x: np.ndarray, k: int, *, seed: int = 0, restarts: int = 5, iters: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """k-means on the unit sphere (cosine similarity), k-means++ seeding, best of ``restarts``."""
    rng = np.random.default_rng(seed)
    x = _unit(x)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(restarts):
        centres = [x[rng.integers(len(x))]]
        for _ in range(1, k):
            dist = 1 - np.max(x @ np.array(centres).T, axis=1)
            probs = np.maximum(dist, 0) ** 2
            total = probs.sum()
            pick = rng.choice(len(x), p=probs / total) if total > 0 else rng.integers(len(x))
            centres.append(x[pick])
        c = np.array(centres)
        labels = np.zeros(len(x), int)
        for _ in range(iters):
            labels = np.argmax(x @ c.T, axis=1)
            new = np.array(
                [x[labels == j].mean(axis=0) if np.any(labels == j) else c[j] for j in range(k)]
            )
            new = _unit(new)
            if np.allclose(new, c):
                break
            c = new
        score = float(np.sum(np.max(x @ c.T, axis=1)))
        if best is None or score > best[0]:
            best = (score, labels, c)
    assert best is not None
    return best[1], best[2]


def _smooth(labels: np.ndarray, width: int) -> np.ndarray:
    """Majority vote over ``width`` neighbouring partials: no 0.4 s speaker flicker."""
    if width <= 1 or len(labels) < width:
        return labels
    half = width // 2
    out = labels.copy()
    for i in range(len(labels)):
        window = labels[max(0, i - half) : i + half + 1]
        out[i] = np.bincount(window).argmax()
    return out


def _turns_from_partials(
    regions: list[SpeechRegion], centres: np.ndarray, labels: np.ndarray, step: float = 0.05
) -> list[Turn]:
    """Label each 50 ms of speech by the nearest partial; merge runs into turns."""
    turns: list[Turn] = []
    for region in regions:
        t = region.start
        while t < region.end:
            end = min(region.end, t + step)
            speaker = f"S{labels[int(np.argmin(np.abs(centres - (t + end) / 2)))]}"
            if turns and turns[-1].speaker == speaker and abs(turns[-1].end - t) < 1e-6:
                turns[-1] = Turn(turns[-1].start, end, speaker)
            else:
                turns.append(Turn(t, end, speaker))
            t = end
    return turns


def speaker_at(start: float, end: float, turns: list[Turn]) -> str | None:
    """The speaker with the most overlap with [start, end], else the nearest turn's."""
    if not turns:
        return None
    overlap: dict[str, float] = {}
    for turn in turns:
        share = min(end, turn.end) - max(start, turn.start)
        if share > 0:
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + share
    if overlap:
        return max(overlap, key=lambda s: overlap[s])
    mid = (start + end) / 2
    return min(turns, key=lambda t: min(abs(t.start - mid), abs(t.end - mid))).speaker


def split_by_speaker(segments: list[SegmentOut], turns: list[Turn]) -> list[SegmentOut]:
    """Give every word its speaker and cut segments where the speaker changes."""
    out: list[SegmentOut] = []
    for seg in segments:
        if not seg.words:
            seg.speaker = speaker_at(seg.start, seg.end, turns)
            out.append(seg)
            continue
        groups: list[tuple[str | None, list[WordOut]]] = []
        for word in seg.words:
            who = speaker_at(word.start, word.end, turns)
            if groups and groups[-1][0] == who:
                groups[-1][1].append(word)
            else:
                groups.append((who, [word]))
        for who, words in groups:
            text = "".join(w.word for w in words).strip()
            if text:
                out.append(
                    SegmentOut(
                        words[0].start,
                        words[-1].end,
                        text,
                        seg.channel,
                        who,
                        seg.role,
                        seg.language,
                        seg.avg_logprob,
                        words,
                    )
                )
    return sorted(out, key=lambda s: (s.start, s.end))


def channel_turns(segments: list[SegmentOut]) -> list[Turn]:
    """Stereo: the turns are the segments themselves, speaker = channel."""
    return [Turn(s.start, s.end, s.speaker or f"ch{s.channel}") for s in segments]


def make_diarizer(name: str = "encoder", **kwargs: Any) -> MonoDiarizer:
    if name == "encoder":
        return EncoderDiarizer(**kwargs)
    if name == "pyannote":
        from earwitness.transcription.pyannote_backend import PyannoteDiarizer

        return PyannoteDiarizer(**kwargs)
    from earwitness.errors import BadInput

    raise BadInput(f"unknown diarization backend {name!r} (encoder, pyannote)")
