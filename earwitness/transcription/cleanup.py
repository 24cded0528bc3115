"""Keep Whisper's known inventions out of transcripts; normalise Chinese to simplified.

Whisper was trained on subtitled video, so on silence, music or line noise it
"hears" credits ("字幕由 Amara.org 社群提供", "Thanks for watching") and it can
loop, repeating one phrase until the window ends. An investigator must never
read words nobody said, so a segment is dropped when it is a known credit line
or when the model itself says there was no speech (the engine then decodes that
voice again or marks it ``[inaudible]``); loops are cut to one occurrence. Each guard
is tested on real speech: a guard that drops real words is worse than none.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol, TypeVar

#: Credit lines and sign-offs Whisper produces on non-speech (lower-cased, spaces removed).
SILENCE_PHRASES = (
    "amara.org",
    "字幕由",
    "字幕提供",
    "字幕制作",
    "请不吝点赞",
    "订阅转发打赏",
    "明镜与点点栏目",
    "优优独播剧场",
    "thanksforwatching",
    "thankyouforwatching",
    "subtitlesby",
    "subscribetomychannel",
    "pleasesubscribe",
)


class _HasWord(Protocol):
    word: str


W = TypeVar("W", bound=_HasWord)

_NO_SPEECH_PROB = 0.6
_LOW_LOGPROB = -1.0


@lru_cache(maxsize=1)
def _t2s() -> object:
    from opencc import OpenCC

    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → simplified Chinese (the multilingual model often writes traditional)."""
    converter = _t2s()
    return str(converter.convert(text))  # type: ignore[attr-defined]


def is_credit_line(text: str) -> bool:
    key = re.sub(r"[\s,.!?，。！？、:：\"'“”]+", "", text.lower())
    return any(phrase in key for phrase in SILENCE_PHRASES)


def is_no_speech(no_speech_prob: float, avg_logprob: float) -> bool:
    """Whisper's own rule: likely silence *and* a low-confidence decode."""
    return no_speech_prob > _NO_SPEECH_PROB and avg_logprob < _LOW_LOGPROB


def _units(text: str) -> list[str]:
    """Words for spaced languages, characters for Chinese/Japanese."""
    if re.search(r"[\u3400-\u9fff]", text):
        return [c for c in text if not c.isspace()]
    return text.split()


#: A run is a loop only when a phrase repeats this often *and* the run is this long:
#: people do say "对对对", "no no no no" or "谢谢谢谢" (谢谢 twice), and a guard that
#: drops real words is worse than none; Whisper's loops run on for dozens of units.
LOOP_MIN_REPEATS = 5
LOOP_MIN_UNITS = 12


def _loop_runs(keys: list[str], max_ngram: int = 8) -> list[tuple[int, int, int]]:
    """(start, n, repeats) of every run of an n-gram repeated into a loop, left to right."""
    runs: list[tuple[int, int, int]] = []
    i = 0
    while i < len(keys):
        found = None
        for n in range(1, min(max_ngram, len(keys) - i) + 1):
            gram = keys[i : i + n]
            reps = 1
            while keys[i + reps * n : i + (reps + 1) * n] == gram:
                reps += 1
            if reps >= LOOP_MIN_REPEATS and reps * n >= LOOP_MIN_UNITS:
                found = (i, n, reps)
                break
        if found:
            runs.append(found)
            i += found[1] * found[2]
        else:
            i += 1
    return runs


def collapse_repeats(text: str) -> str:
    """Cut a looping phrase (see ``LOOP_MIN_*``) down to one occurrence."""
    units = _units(text)
    runs = _loop_runs(units)
    if not runs:
        return text
    drop: set[int] = set()
    for start, n, reps in runs:
        drop.update(range(start + n, start + reps * n))
    kept = [u for i, u in enumerate(units) if i not in drop]
    spaced = not re.search(r"[\u3400-\u9fff]", text)
    return " ".join(kept) if spaced else "".join(kept)


def collapse_word_loops(words: list[W]) -> list[W]:
    """The word-level twin of :func:`collapse_repeats` (keeps each word's own times)."""
    keys = [w.word.strip().lower() for w in words]
    drop: set[int] = set()
    for start, n, reps in _loop_runs(keys):
        drop.update(range(start + n, start + reps * n))
    return [w for i, w in enumerate(words) if i not in drop]


def is_loop(text: str) -> bool:
    """A decode that is mostly one repeated unit (e.g. 'the the the the ...')."""
    units = _units(text)
    return len(units) >= 8 and len(set(units)) <= max(2, len(units) // 6)
