"""The search index's own table; the engine-specific structures live beside it in SQL only.

``search_segments`` holds one row per indexed transcript segment: its folded text
(``norm``, for substring matching) and its word tokens (``tokens``, for one- and
two-character queries). The full-text structures built on it differ per database
(SQLite FTS5 virtual tables and triggers, PostgreSQL GIN indexes) and cannot be
expressed as models, so migration 0006 creates them with SQL, every one named with
the ``search_fts`` prefix. :func:`include_name` keeps exactly those names out of
Alembic's model-vs-schema comparison; the search tests check that they exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from earwitness.models.base import Base

ENGINE_OBJECT_PREFIX = "search_fts"


class SearchSegment(Base):
    """One segment as the index sees it. Rows vanish with their segment (cascade), so
    re-transcribing a call can never leave stale hits behind."""

    __tablename__ = "search_segments"
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    norm: Mapped[str] = mapped_column(Text)
    tokens: Mapped[str] = mapped_column(Text)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic ``include_name`` hook: hide the engine-specific search structures (FTS5
    virtual tables and their shadow tables, PostgreSQL GIN indexes) from schema comparison;
    everything else is compared as usual."""
    return not (name or "").startswith(ENGINE_OBJECT_PREFIX)
