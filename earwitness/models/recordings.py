"""Audio recordings of calls, stored content-addressed and linked to their call."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from earwitness.models.base import Base, Timestamps, utcnow


class Recording(Base, Timestamps):
    """A recording; ``state`` says why there is no audio when there is none."""

    __tablename__ = "recordings"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    # expected|recording|ingested|missing|empty|failed
    state: Mapped[str] = mapped_column(String(20), default="expected")
    source_path: Mapped[str | None] = mapped_column(String(500))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int | None]
    format: Mapped[str | None] = mapped_column(String(40))
    codec: Mapped[str | None] = mapped_column(String(40))
    channels: Mapped[int | None]
    sample_rate: Mapped[int | None]
    duration_s: Mapped[float | None]
    header_repaired: Mapped[bool] = mapped_column(default=False)
    # Both channels carry the same mix: one speaker stream, not two (diarize as mono).
    dual_mono: Mapped[bool] = mapped_column(default=False)
    original_name: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
