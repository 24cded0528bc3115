"""Settings an admin changes in the web UI (not deployment configuration, which lives in
``earwitness.config``): one row per key, with who set it and when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from earwitness.models.base import Base, utcnow


class UiSetting(Base):
    """E.g. ``map_tile_url``: the tile server the case page's map uses (none: offline)."""

    __tablename__ = "ui_settings"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
