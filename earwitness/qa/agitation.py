"""Customer agitation cues per line, and whether they fall by the end of the call.

Why cues and not an "emotion model": QA people must be able to see *why* a line counted
as agitated, and argue with it. Three cues, each worth 1 per line:

- anger words (from the rules file, e.g. "ridiculous", "投诉", "曝光"), each distinct word
  counting once;
- a louder voice: the line's RMS level at least ``loudness_rise_db`` above the customer's
  median line level (only when the audio was measured; see :mod:`earwitness.qa.loudness`);
- repetition: the line repeats an earlier customer line (rapidfuzz ratio ≥
  ``repeat_similarity``) — customers who feel unheard say the same thing again.

``start`` is the mean cue count over the first half of the customer's lines, ``end`` over
the last third; the customer *calmed* when ``end`` < ``start`` or ``end`` is 0.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rapidfuzz import fuzz

from earwitness.qa.rules import AgitationParams


@dataclass(frozen=True)
class LineCues:
    index: int  # position in the customer's lines
    anger_words: tuple[str, ...]
    louder_db: float | None  # above the customer's median level, when measured
    loud: bool
    repeats: int | None  # index of the earlier line it repeats

    @property
    def score(self) -> int:
        return len(self.anger_words) + int(self.loud) + int(self.repeats is not None)


@dataclass(frozen=True)
class Agitation:
    cues: tuple[LineCues, ...]
    start: float | None
    end: float | None
    calmed: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "calmed": self.calmed,
            "lines": [{**asdict(c), "score": c.score} for c in self.cues if c.score],
        }


def _mean(values: Sequence[int]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def agitation(
    texts: Sequence[str], loudness_db: Sequence[float | None], params: AgitationParams
) -> Agitation:
    """Cues of each customer line (normalised ``texts`` in call order) and the trend."""
    levels = [x for x in loudness_db if x is not None]
    median = statistics.median(levels) if len(levels) >= 2 else None
    cues: list[LineCues] = []
    for i, text in enumerate(texts):
        words = tuple(sorted(set(params.anger_words.findall(text))))
        level = loudness_db[i] if i < len(loudness_db) else None
        louder = None if level is None or median is None else round(level - median, 2)
        repeats = None
        if len(text) >= 6:
            for j in range(i):
                if fuzz.ratio(text, texts[j], score_cutoff=params.repeat_similarity):
                    repeats = j
                    break
        loud = louder is not None and louder >= params.loudness_rise_db
        cues.append(LineCues(i, words, louder, loud, repeats))
    scores = [c.score for c in cues]
    if not scores:
        return Agitation((), None, None, None)
    first = scores[: max(1, len(scores) // 2)]
    last = scores[-max(1, len(scores) // 3) :]
    start, end = _mean(first), _mean(last)
    assert start is not None and end is not None
    return Agitation(tuple(cues), start, end, end < start or end == 0)
