"""Phrase, regex and fuzzy matching of transcript lines, as the QA rules use it.

Why not one big regex: Python's ``re`` tries every branch of an alternation at every
position; plain phrases are far cheaper as C-speed substring searches with an ASCII
word-edge check, so only real regexes go through ``re``. Fuzzy phrases (rapidfuzz partial
ratio) catch recognition errors such as 抱歉 → 报歉.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz


def normalize(text: str) -> str:
    """What matching sees: NFKC (full-width → ASCII), case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


@dataclass(frozen=True)
class Phrase:
    """A normalised phrase; ASCII word edges must not touch letters ("sorry" ≠ "sorryish")."""

    text: str
    left_edge: bool
    right_edge: bool

    def find(self, text: str) -> bool:
        at = text.find(self.text)
        while at >= 0:
            end = at + len(self.text)
            if not (self.left_edge and at > 0 and _is_word_char(text[at - 1])) and not (
                self.right_edge and end < len(text) and _is_word_char(text[end])
            ):
                return True
            at = text.find(self.text, at + 1)
        return False


@dataclass(frozen=True)
class Matcher:
    """Phrases (substring search, C speed), regexes in one alternation, fuzzy phrases."""

    phrases: tuple[Phrase, ...] = ()
    pattern: re.Pattern[str] | None = None
    fuzzy: tuple[str, ...] = ()
    fuzzy_min: int = 85

    def search(self, text: str) -> str | None:
        """The matched snippet in normalised ``text``, or None."""
        for phrase in self.phrases:
            if phrase.text in text and phrase.find(text):
                return phrase.text
        if self.pattern is not None:
            found = self.pattern.search(text)
            if found:
                return found.group(0)
        for fuzzy in self.fuzzy:
            if fuzz.partial_ratio(fuzzy, text, score_cutoff=self.fuzzy_min):
                return f"~{fuzzy}"
        return None

    def findall(self, text: str) -> list[str]:
        """Every phrase present (once each) and every regex match."""
        found = [p.text for p in self.phrases if p.text in text and p.find(text)]
        if self.pattern is not None:
            found += [m.group(0) for m in self.pattern.finditer(text)]
        return found

    @property
    def empty(self) -> bool:
        return not self.phrases and self.pattern is None and not self.fuzzy


def compile_matcher(
    phrases: list[str], regex: list[str], fuzzy: list[str], fuzzy_min: int
) -> Matcher:
    compiled = tuple(
        Phrase(normalize(p), _is_word_char(p.strip()[0]), _is_word_char(p.strip()[-1]))
        for p in phrases
        if p.strip()
    )
    pattern = re.compile("|".join(f"(?:{r})" for r in regex), re.IGNORECASE) if regex else None
    return Matcher(compiled, pattern, tuple(normalize(f) for f in fuzzy if f.strip()), fuzzy_min)
