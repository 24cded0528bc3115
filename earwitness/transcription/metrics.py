"""WER, CER and DER, small and documented (no pyannote.metrics / meeteval dependency).

- WER/CER: Levenshtein distance between reference and hypothesis token lists
  (words; for CER characters with spaces and punctuation removed) divided by
  the reference length, after lower-casing and stripping punctuation. Chinese
  is compared by characters (CER), where word boundaries do not exist.
- DER: frame-based (10 ms) diarization error rate as in NIST RT: (missed
  speech + false alarm + speaker confusion) / reference speech, each frame
  counted once per reference speaker, with the hypothesis→reference speaker
  mapping that minimises confusion (optimal, by trying all assignments, fine
  for the handful of speakers in a call). An optional ``collar`` around
  reference boundaries is not scored.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from earwitness.transcription.types import Turn

_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", _PUNCT.sub(" ", text)).strip()


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    return edit_distance(ref, hyp) / max(len(ref), 1)


def cer(reference: str, hypothesis: str) -> float:
    ref = normalise(reference).replace(" ", "")
    hyp = normalise(hypothesis).replace(" ", "")
    return edit_distance(list(ref), list(hyp)) / max(len(ref), 1)


def _frames(turns: list[Turn], speakers: list[str], n: int, step: float) -> np.ndarray:
    grid = np.zeros((len(speakers), n), dtype=bool)
    index = {s: i for i, s in enumerate(speakers)}
    for t in turns:
        grid[index[t.speaker], int(round(t.start / step)) : int(round(t.end / step))] = True
    return grid


def der(
    reference: list[Turn], hypothesis: list[Turn], *, collar: float = 0.0, step: float = 0.01
) -> float:
    """Diarization error rate of ``hypothesis`` against ``reference`` (0 = perfect)."""
    end = max([t.end for t in reference + hypothesis] + [0.0])
    n = int(np.ceil(end / step)) + 1
    ref_spk = sorted({t.speaker for t in reference})
    hyp_spk = sorted({t.speaker for t in hypothesis})
    ref = _frames(reference, ref_spk, n, step)
    hyp = _frames(hypothesis, hyp_spk, n, step)
    scored = np.ones(n, dtype=bool)
    if collar > 0:
        for t in reference:
            for edge in (t.start, t.end):
                scored[max(0, int((edge - collar) / step)) : int((edge + collar) / step)] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    total = float(ref.sum())
    if total == 0:
        return 0.0
    n_ref, n_hyp = ref.sum(axis=0), hyp.sum(axis=0)
    miss = float(np.maximum(n_ref - n_hyp, 0).sum())
    false_alarm = float(np.maximum(n_hyp - n_ref, 0).sum())
    best_correct = 0.0
    size = max(len(ref_spk), len(hyp_spk))
    hyp_pad = np.vstack([hyp, np.zeros((size - len(hyp_spk), hyp.shape[1]), bool)])
    for perm in itertools.permutations(range(size), len(ref_spk)):
        correct = float(sum((ref[i] & hyp_pad[p]).sum() for i, p in enumerate(perm)))
        best_correct = max(best_correct, correct)
    confusion = float(np.minimum(n_ref, n_hyp).sum()) - best_correct
    return (miss + false_alarm + confusion) / total
