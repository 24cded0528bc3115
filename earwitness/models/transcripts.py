"""Transcripts: per-recording results, their timed segments and words."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from earwitness.models.base import Base, Timestamps


class Transcript(Base, Timestamps):
    """One transcription run; ``params`` records model and options that produced it.

    At most one transcript per recording and model: re-running a job replaces it.
    """

    __tablename__ = "transcripts"
    __table_args__ = (
        UniqueConstraint("recording_id", "model", name="uq_transcripts_recording_model"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(10))
    diarization: Mapped[str] = mapped_column(String(40), default="channel")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    segments: Mapped[list[Segment]] = relationship(
        back_populates="transcript", order_by="Segment.start_s", cascade="all, delete-orphan"
    )


class Segment(Base):
    """A stretch of speech by one speaker; ``role`` is agent/customer/unknown."""

    __tablename__ = "segments"
    id: Mapped[int] = mapped_column(primary_key=True)
    transcript_id: Mapped[int] = mapped_column(
        ForeignKey("transcripts.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[int | None]
    speaker: Mapped[str | None] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20), default="unknown")
    language: Mapped[str | None] = mapped_column(String(10))
    start_s: Mapped[float]
    end_s: Mapped[float]
    text: Mapped[str] = mapped_column(Text)
    avg_logprob: Mapped[float | None]
    transcript: Mapped[Transcript] = relationship(back_populates="segments")
    words: Mapped[list[Word]] = relationship(
        back_populates="segment", order_by="Word.start_s", cascade="all, delete-orphan"
    )


class Word(Base):
    __tablename__ = "words"
    id: Mapped[int] = mapped_column(primary_key=True)
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), index=True
    )
    start_s: Mapped[float]
    end_s: Mapped[float]
    word: Mapped[str] = mapped_column(String(200))
    probability: Mapped[float | None]
    segment: Mapped[Segment] = relationship(back_populates="words")
