"""Small public result types shared by the engine, diarization, roles and exports."""

from __future__ import annotations

from dataclasses import dataclass, field

AGENT, CUSTOMER, UNKNOWN = "agent", "customer", "unknown"
#: The text of a segment where a voice was heard but no word could be recognised.
INAUDIBLE = "[inaudible]"


@dataclass
class WordOut:
    start: float
    end: float
    word: str
    probability: float | None = None


@dataclass
class SegmentOut:
    """One stretch of speech by one speaker; ``channel`` is None for a mono mix."""

    start: float
    end: float
    text: str
    channel: int | None = None
    speaker: str | None = None
    role: str = UNKNOWN
    language: str | None = None
    avg_logprob: float | None = None
    words: list[WordOut] = field(default_factory=list)

    @property
    def inaudible(self) -> bool:
        """Voice was there, words were not: the span must be listened to."""
        return self.text == INAUDIBLE and not self.words


@dataclass(frozen=True)
class SpeechRegion:
    start: float
    end: float


@dataclass(frozen=True)
class Turn:
    """A diarization turn: who spoke from ``start`` to ``end``."""

    start: float
    end: float
    speaker: str


@dataclass
class ChannelResult:
    """Everything one audio stream produced (one channel, or the mono mix)."""

    channel: int | None
    language: str | None
    language_probability: float
    model: str
    segments: list[SegmentOut]
    speech: list[SpeechRegion]
    dropped: list[str] = field(default_factory=list)
