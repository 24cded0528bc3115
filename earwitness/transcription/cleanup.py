"""Keep Whisper's known inventions out of transcripts; normalise Chinese to simplified.

Whisper was trained on subtitled video, so on silence, music or line noise it
"hears" credits ("字幕由 Amara.org 社群提供", "Thanks for watching") and it can
loop, repeating one phrase until the window ends. An investigator must never
read words nobody said, so a segment is dropped when it is a known credit line,
when the model itself says there was no speech, or when VAD found no voice
under it; runs of a repeated phrase are cut to one occurrence.
"""

from __future__ import annotations

import re
from functools import lru_cache

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

_NO_SPEECH_PROB = 0.6
_LOW_LOGPROB = -1.0
#: Share of a segment that must be covered by VAD speech for its text to be kept.
MIN_SPEECH_SHARE = 0.2


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


def collapse_repeats(text: str, *, min_repeats: int = 3, max_ngram: int = 8) -> str:
    """Cut a phrase repeated ``min_repeats``+ times in a row down to one occurrence."""
    units = _units(text)
    spaced = not re.search(r"[\u3400-\u9fff]", text)
    changed = False
    i = 0
    out: list[str] = []
    while i < len(units):
        collapsed = False
        for n in range(1, max_ngram + 1):
            gram = units[i : i + n]
            if len(gram) < n:
                break
            reps = 1
            while units[i + reps * n : i + (reps + 1) * n] == gram:
                reps += 1
            if reps >= min_repeats:
                out.extend(gram)
                i += reps * n
                collapsed = changed = True
                break
        if not collapsed:
            out.append(units[i])
            i += 1
    if not changed:
        return text
    return " ".join(out) if spaced else "".join(out)


def is_loop(text: str) -> bool:
    """A decode that is mostly one repeated unit (e.g. 'the the the the ...')."""
    units = _units(text)
    return len(units) >= 8 and len(set(units)) <= max(2, len(units) // 6)
