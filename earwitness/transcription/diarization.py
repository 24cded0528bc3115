"""Who spoke when: exact for stereo (channel = speaker), estimated for a mono mix.

Stereo needs no model: MixMonitor records caller and agent on their own
channels, so the channel *is* the speaker. For mono (a dual-mono file, an
uploaded mix) a :class:`MonoDiarizer` backend estimates turns:

- ``encoder`` (default): silero VAD (shipped with faster-whisper) → 1.6 s
  partial windows → the resemblyzer GE2E speaker encoder run in numpy
  (:mod:`voice_encoder`) → average-linkage clustering on cosine similarity,
  stopped at a similarity threshold, so the number of speakers is *found*
  (1 for a monologue, 3+ for a transfer or a conference) → centroid
  refinement → label smoothing → same-speaker pauses bridged.
  The previous k-means (k=2, one speaker kept when the centroids were more
  alike than 0.85) was tuned on espeak voices and found a single speaker in
  real two-person speech; ``benchmarks/bench_diarization.py`` measures both.
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
    """VAD + GE2E embeddings + threshold clustering; hyper-parameters are recorded with each result.

    ``merge_similarity``: two groups of partials are one speaker while their mean
    pairwise cosine similarity is at least this. On real read speech (AISHELL-1,
    LibriSpeech, LJ Speech, FLEURS) GE2E partials of one voice average 0.69-0.82,
    of two voices 0.37-0.65; counts come out right over 0.62-0.67, 0.64 is the middle.
    ``min_speaker_partials``: a cluster needs this many clean partials to be a
    speaker (one odd 1.6 s window is noise, not a new person).
    ``bridge_s``: a pause this short between turns of one speaker stays in the turn.
    """

    name: str = "encoder"
    hop_s: float = 0.4
    max_speakers: int = 8
    merge_similarity: float = 0.64
    min_speaker_partials: int = 2
    smooth: int = 3
    bridge_s: float = 0.6

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

    def _params(self) -> dict[str, Any]:
        return {
            "hop_s": self.hop_s,
            "max_speakers": self.max_speakers,
            "merge_similarity": self.merge_similarity,
            "min_speaker_partials": self.min_speaker_partials,
            "smooth": self.smooth,
            "bridge_s": self.bridge_s,
            "clustering": "average-linkage-cosine",
        }

    def diarize(self, audio: np.ndarray, *, num_speakers: int | None = None) -> Diarization:
        regions = speech_regions(audio)
        params = self._params()
        centres: list[float] = []
        batches: list[np.ndarray] = []
        clean: list[bool] = []
        for region in regions:
            chunk = audio[int(region.start * SAMPLE_RATE) : int(region.end * SAMPLE_RATE)]
            c, frames = self._partials(chunk, region.start)
            centres.extend(c)
            batches.append(frames)
            # a region shorter than one window is zero-padded: its voice print is unreliable
            clean.extend([region.end - region.start >= PARTIAL_FRAMES / 100] * len(c))
        if not centres:
            return Diarization([], self.name, params)
        emb = np.concatenate([load_encoder().embed(b) for b in batches if len(b)])
        labels, centroids = cluster_speakers(
            emb,
            np.array(clean),
            num_speakers=num_speakers,
            merge_similarity=self.merge_similarity,
            min_partials=self.min_speaker_partials,
            max_speakers=self.max_speakers,
        )
        labels = _smooth(labels, self.smooth)
        labels, centroids = _first_appearance_order(labels, centroids)
        turns = bridge_pauses(
            _turns_from_partials(regions, np.array(centres), labels), self.bridge_s
        )
        params["speakers_found"] = len(centroids)
        return Diarization(turns, self.name, params, {f"S{k}": c for k, c in enumerate(centroids)})


def cluster_speakers(
    emb: np.ndarray,
    clean: np.ndarray,
    *,
    num_speakers: int | None = None,
    merge_similarity: float = 0.64,
    min_partials: int = 2,
    max_speakers: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Speaker label per partial embedding and one unit centroid per speaker.

    The count is found by average-linkage clustering stopped at ``merge_similarity``
    (or forced to ``num_speakers``), on the clean partials only: zero-padded
    windows from very short regions are outliers that would otherwise become
    "speakers". Clusters under ``min_partials`` are dropped, the rest refined by
    spherical k-means from their centroids, then every partial joins its nearest
    centroid.
    """
    x = _unit(emb)
    core = x[clean] if int(np.sum(clean)) >= 2 else x
    if len(core) < 2 or num_speakers == 1:
        return np.zeros(len(x), int), _unit(x.mean(axis=0, keepdims=True))
    if num_speakers:
        groups = average_linkage(core, min_similarity=-1.0, num_clusters=num_speakers)
    else:
        groups = average_linkage(core, min_similarity=merge_similarity, num_clusters=1)
        sizes = np.bincount(groups)
        big = [k for k in np.argsort(-sizes) if sizes[k] >= min_partials][:max_speakers]
        if not big:
            big = [int(np.argmax(sizes))]
        centres = _unit(np.stack([core[groups == k].mean(axis=0) for k in big]))
        groups = np.unique(np.argmax(core @ centres.T, axis=1), return_inverse=True)[1]
    k = int(groups.max()) + 1
    init = _unit(np.stack([core[groups == j].mean(axis=0) for j in range(k)]))
    _, centroids = spherical_kmeans(core, k, init=init)
    labels = np.argmax(x @ centroids.T, axis=1)
    used = np.unique(labels)
    return np.searchsorted(used, labels), centroids[used]


def average_linkage(x: np.ndarray, *, min_similarity: float, num_clusters: int) -> np.ndarray:
    """Agglomerative clustering of unit rows by mean cosine similarity (UPGMA).

    Merges the most similar pair of clusters until no pair reaches
    ``min_similarity`` or ``num_clusters`` remain; returns labels 0..k-1.
    O(n²) memory and O(n³) time in the worst case, fine for the few hundred
    partials of a call; for hour-long audio cluster per window first.
    """
    n = len(x)
    sim = (x @ x.T).astype(np.float64)
    np.fill_diagonal(sim, -np.inf)
    size = np.ones(n)
    owner = np.arange(n)
    alive = n
    while alive > max(num_clusters, 1):
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[i, j] < min_similarity:
            break
        merged = (sim[i] * size[i] + sim[j] * size[j]) / (size[i] + size[j])
        sim[i], sim[:, i] = merged, merged
        sim[i, i] = -np.inf
        sim[j], sim[:, j] = -np.inf, -np.inf
        size[i] += size[j]
        owner[owner == j] = i
        alive -= 1
    return np.unique(owner, return_inverse=True)[1]


def _first_appearance_order(
    labels: np.ndarray, centroids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Name speakers in order of first appearance (S0 speaks first); drop unused centroids."""
    order = list(dict.fromkeys(labels.tolist()))
    remap = {old: new for new, old in enumerate(order)}
    return np.array([remap[x] for x in labels], dtype=int), centroids[order]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


def spherical_kmeans(
    x: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    restarts: int = 5,
    iters: int = 50,
    init: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k-means on the unit sphere (cosine similarity).

    From ``init`` centroids when given (one run), else k-means++ seeding, best of ``restarts``.
    """
    rng = np.random.default_rng(seed)
    x = _unit(x)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(1 if init is not None else restarts):
        if init is not None:
            c = _unit(np.asarray(init, dtype=x.dtype))
        else:
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


def bridge_pauses(turns: list[Turn], max_gap: float) -> list[Turn]:
    """Join consecutive turns of one speaker across pauses up to ``max_gap`` seconds.

    VAD cuts at every breath; a listener (and NIST-style references) counts a
    short pause as part of the speaker's turn, and words in it keep their speaker.
    """
    out: list[Turn] = []
    for turn in sorted(turns, key=lambda t: t.start):
        if out and out[-1].speaker == turn.speaker and turn.start - out[-1].end <= max_gap:
            out[-1] = Turn(out[-1].start, max(out[-1].end, turn.end), turn.speaker)
        else:
            out.append(turn)
    return out


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
