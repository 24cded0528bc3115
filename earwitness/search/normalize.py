"""Text folding shared by the index and the query, with a map back to the original text.

Transcripts and queries disagree in surface form far more often than in meaning:
Whisper writes Mandarin in traditional characters, callers say 五十 where the
agent's note says 50, full-width ＡＢＣ comes from some input methods. Both sides
are folded the same way (traditional → simplified, NFKC + casefold, runs of
Chinese numerals → digits, punctuation dropped) so a match does not depend on
which form was written. Every folded character remembers the span of the
original it came from, so highlights are placed on the text the investigator
reads, not on the folded copy.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
UNITS = {"十": 10, "百": 100, "千": 1000}
MYRIAD = "万"
NUMERAL_CHARS = set(DIGITS) | set(UNITS) | {MYRIAD}


def is_cjk(ch: str) -> bool:
    """Ideographs, kana and hangul: scripts written without spaces between words."""
    code = ord(ch)
    return (
        0x3400 <= code <= 0x9FFF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x2FFFF
        or 0x3040 <= code <= 0x30FF
        or 0xAC00 <= code <= 0xD7AF
    )


@lru_cache(maxsize=1)
def _t2s() -> Any:
    from opencc import OpenCC

    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → simplified, length-preserving (falls back to per-character when a phrase
    rule would change the length, so offsets stay exact)."""
    if not any(is_cjk(ch) for ch in text):
        return text
    converted: str = _t2s().convert(text)
    if len(converted) == len(text):
        return converted
    return "".join(c if len(c := _t2s().convert(ch)) == 1 else ch for ch in text)


def chinese_number(run: str) -> str | None:
    """Value of a run of Chinese numerals as digits: 五十 → 50, 一二三四五 → 12345,
    三千五 → 3500 (spoken shorthand), 二零二四 → 2024. None when the run is not a number."""
    if not any(ch in UNITS or ch == MYRIAD for ch in run):
        return "".join(str(DIGITS[ch]) for ch in run)
    total = section = 0
    digit: int | None = None
    last_unit = 1
    after_unit = False
    for ch in run:
        if ch in DIGITS:
            digit = DIGITS[ch]
            after_unit = False if DIGITS[ch] == 0 else after_unit
        elif ch in UNITS:
            unit = UNITS[ch]
            section += (1 if digit is None else digit) * unit
            digit, last_unit, after_unit = None, unit, True
        elif ch == MYRIAD:
            section += digit or 0
            total += (section or 1) * 10000
            section, digit, last_unit, after_unit = 0, None, 10000, True
        else:
            return None
    if digit is not None:
        section += digit * (last_unit // 10) if after_unit and last_unit >= 100 else digit
    return str(total + section)


@dataclass(frozen=True)
class Folded:
    """Folded text plus, for each of its characters, the [start, end) span in the original."""

    text: str
    spans: tuple[tuple[int, int], ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) range of the folded text back to the original text."""
        return self.spans[start][0], self.spans[end - 1][1]


def fold(text: str) -> Folded:
    """Fold for matching; punctuation and spaces between CJK characters vanish, other runs of
    spaces/punctuation become one space."""
    simplified = to_simplified(text)
    chars: list[tuple[str, int, int]] = []
    for i, ch in enumerate(simplified):
        normal = unicodedata.normalize("NFKC", ch)
        if normal != ch:  # e.g. a compatibility ideograph (U+F9B1) becomes a traditional one
            normal = to_simplified(normal)  # so folding twice changes nothing (issue 19)
        for out in normal.casefold():
            chars.append((out, i, i + 1))
    chars = _fold_numerals(chars)
    result: list[str] = []
    spans: list[tuple[int, int]] = []
    pending_space: tuple[int, int] | None = None
    for out, start, end in chars:
        if not out.isalnum():
            if result and pending_space is None:
                pending_space = (start, end)
            continue
        if pending_space is not None and not (is_cjk(result[-1]) and is_cjk(out)):
            result.append(" ")
            spans.append(pending_space)
        pending_space = None
        result.append(out)
        spans.append((start, end))
    return Folded("".join(result), tuple(spans))


def _fold_numerals(chars: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Replace runs of two or more Chinese numerals by their digits. Single characters stay:
    一 in 一直 or 统一 is no number, and folding both sides alike keeps matches either way."""
    out: list[tuple[str, int, int]] = []
    i = 0
    while i < len(chars):
        j = i
        while j < len(chars) and chars[j][0] in NUMERAL_CHARS:
            j += 1
        if j - i >= 2 and (value := chinese_number("".join(c[0] for c in chars[i:j]))):
            start, end = chars[i][1], chars[j - 1][2]
            out.extend((digit, start, end) for digit in value)
            i = j
        elif j > i:
            out.extend(chars[i:j])
            i = j
        else:
            out.append(chars[i])
            i += 1
    return out


def tokens(folded: str) -> str:
    """Space-separated tokens for the word index: every CJK character on its own, other
    alphanumeric runs whole. Both FTS5 ``unicode61`` and PostgreSQL's ``simple`` parser split
    this string identically, so short queries mean the same thing on both backends."""
    out: list[str] = []
    word: list[str] = []
    for ch in folded:
        if is_cjk(ch) or not ch.isalnum():
            if word:
                out.append("".join(word))
                word = []
            if is_cjk(ch):
                out.append(ch)
        else:
            word.append(ch)
    if word:
        out.append("".join(word))
    return " ".join(out)
