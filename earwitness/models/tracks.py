"""GPS/track logs parsed from evidence files (GPX, NMEA, CSV, GeoJSON, KML)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from earwitness.models.base import Base, Timestamps


class Track(Base, Timestamps):
    __tablename__ = "tracks"
    id: Mapped[int] = mapped_column(primary_key=True)
    evidence_id: Mapped[int | None] = mapped_column(ForeignKey("evidence.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    source_format: Mapped[str] = mapped_column(String(20))
    # Datum of the file as received (wgs84|gcj02|bd09); stored points are always WGS-84.
    coord_system: Mapped[str] = mapped_column(String(10), default="wgs84")
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    point_count: Mapped[int] = mapped_column(default=0)
    distance_m: Mapped[float | None]
    analysis: Mapped[dict[str, Any]] = mapped_column(default=dict)
    points: Mapped[list[TrackPoint]] = relationship(
        back_populates="track", order_by="TrackPoint.seq", cascade="all, delete-orphan"
    )


class TrackPoint(Base):
    __tablename__ = "track_points"
    id: Mapped[int] = mapped_column(primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int]
    at: Mapped[datetime | None]
    lat: Mapped[float]
    lon: Mapped[float]
    ele: Mapped[float | None]
    speed_mps: Mapped[float | None]
    track: Mapped[Track] = relationship(back_populates="points")
