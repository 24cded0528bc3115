"""Durable jobs: the table is the source of truth for the in-process worker and Celery alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from earwitness.models.base import Base, Timestamps, utcnow


class Job(Base, Timestamps):
    """A unit of background work; a lease (``locked_until``) lets a dead worker's job be retaken."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_claim", "state", "run_after"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # queued|running|succeeded|failed|cancelled
    state: Mapped[str] = mapped_column(String(20), default="queued")
    priority: Mapped[int] = mapped_column(default=100)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    # Claims retaken after the holder's lease ran out (its worker died): capped like attempts,
    # so a job that kills its worker fails with "worker died N times" instead of looping.
    worker_deaths: Mapped[int] = mapped_column(default=0, server_default="0")
    # Celery mode: when a message for this job was last sent to the broker (None: not yet
    # sent, e.g. the broker was down); the sweeper re-sends runnable jobs left unsent.
    dispatched_at: Mapped[datetime | None]
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None]
    progress: Mapped[float] = mapped_column(default=0.0)
    message: Mapped[str] = mapped_column(String(500), default="")
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
