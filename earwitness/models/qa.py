"""QA audit results per recording, and the QA team's overrides of single rule results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from earwitness.models.base import Base, Timestamps, utcnow


class QaResult(Base, Timestamps):
    """The latest audit of one recording; re-auditing replaces it (overrides stay).

    ``agent`` and ``call_at`` are copied from the call so per-agent scorecards over a
    period need no joins; ``params`` records the rule set (file, digest, thresholds).
    """

    __tablename__ = "qa_results"
    __table_args__ = (Index("ix_qa_results_agent_call_at", "agent", "call_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), unique=True
    )
    # Transcripts are replaced when re-transcribed; the result then points at nothing
    # until the follow-up audit job stores the new one.
    transcript_id: Mapped[int | None] = mapped_column(
        ForeignKey("transcripts.id", ondelete="SET NULL"), index=True
    )
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    agent: Mapped[str | None] = mapped_column(String(120))
    call_at: Mapped[datetime]
    language: Mapped[str | None] = mapped_column(String(10))
    score: Mapped[float | None]
    failed: Mapped[int] = mapped_column(default=0)
    findings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QaOverride(Base, Timestamps):
    """A QA person's decision on one rule of one call: who, when (created_at) and why.

    Rows are never updated: the newest per (recording, rule) applies, the rest is history.
    """

    __tablename__ = "qa_overrides"
    __table_args__ = (Index("ix_qa_overrides_recording_rule", "recording_id", "rule_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"))
    rule_id: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20))  # passed|failed|not_applicable
    reason: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(120))
