"""Which recognised words an investigator should check against the audio.

Whisper gives every word a probability. A word below ``LOW_WORD_PROBABILITY`` is
*low confidence*: kept (evidence loses nothing), but marked, so that search hits,
QA citations and exports can show it is uncertain. Neighbouring low words form one
span; text exports wrap a span in ``LOW_MARK`` brackets, JSON lists the spans.
"""

from __future__ import annotations

from dataclasses import dataclass

from earwitness.transcription.types import SegmentOut, WordOut

LOW_WORD_PROBABILITY = 0.5
LOW_MARK = ("[?", "?]")


@dataclass(frozen=True)
class LowSpan:
    start: float
    end: float
    text: str
    min_probability: float


def is_low(word: WordOut, threshold: float = LOW_WORD_PROBABILITY) -> bool:
    return word.probability is not None and word.probability < threshold


def low_spans(segment: SegmentOut, threshold: float = LOW_WORD_PROBABILITY) -> list[LowSpan]:
    """Runs of consecutive low-confidence words."""
    spans: list[LowSpan] = []
    run: list[WordOut] = []
    for word in [*segment.words, None]:
        if word is not None and is_low(word, threshold):
            run.append(word)
            continue
        if run:
            spans.append(
                LowSpan(
                    run[0].start,
                    run[-1].end,
                    "".join(w.word for w in run).strip(),
                    min(w.probability or 0.0 for w in run),
                )
            )
            run = []
    return spans


def marked_text(segment: SegmentOut, threshold: float = LOW_WORD_PROBABILITY) -> str:
    """The segment's text with each low-confidence run wrapped in ``LOW_MARK``."""
    if not segment.words:
        return segment.text
    out: list[str] = []
    run: list[str] = []
    for word in [*segment.words, None]:
        if word is not None and is_low(word, threshold):
            run.append(word.word)
            continue
        if run:
            joined = "".join(run)
            lead = joined[: len(joined) - len(joined.lstrip())]
            out.append(f"{lead}{LOW_MARK[0]}{joined.strip()}{LOW_MARK[1]}")
            run = []
        if word is not None:
            out.append(word.word)
    return "".join(out).strip()


def segment_confidence(segment: SegmentOut) -> float | None:
    """Mean word probability (None when the segment has no words, e.g. ``[inaudible]``)."""
    probs = [w.probability for w in segment.words if w.probability is not None]
    return round(sum(probs) / len(probs), 4) if probs else None
