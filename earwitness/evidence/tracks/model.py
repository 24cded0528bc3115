"""The one in-memory shape every track parser produces and every analysis consumes.

Columns, not objects: an 86,400-point day of GPS is six numpy arrays, so distance,
speed and geofence maths run vectorised. Coordinates are always WGS-84 here; the
datum the file arrived in is kept in ``coord_system`` for the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from earwitness.errors import BadInput

FloatArray = npt.NDArray[np.float64]
MAX_POINTS = 2_000_000


@dataclass
class TrackData:
    """Points in time order; ``t`` is Unix seconds (NaN when the file had no time)."""

    t: FloatArray
    lat: FloatArray
    lon: FloatArray
    ele: FloatArray
    speed_mps: FloatArray
    # True where the file started a new segment (GPX trkseg, KML track): the step into
    # such a point was not recorded, so it counts as a gap, not as distance driven.
    segment_start: npt.NDArray[np.bool_]
    source_format: str
    coord_system: str = "wgs84"
    name: str = ""
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.lat.shape[0])

    @property
    def has_time(self) -> bool:
        return len(self) > 0 and not bool(np.isnan(self.t).any())

    def time_at(self, index: int) -> datetime | None:
        value = float(self.t[index])
        return None if np.isnan(value) else datetime.fromtimestamp(value, UTC)


class PointBuffer:
    """Collects points while a parser walks a file, then builds a checked TrackData."""

    def __init__(self, source_format: str) -> None:
        self.source_format = source_format
        self.t: list[float] = []
        self.lat: list[float] = []
        self.lon: list[float] = []
        self.ele: list[float] = []
        self.speed: list[float] = []
        self.starts: list[int] = []

    def new_segment(self) -> None:
        """The next point starts a new recorded segment."""
        if self.lat and (not self.starts or self.starts[-1] != len(self.lat)):
            self.starts.append(len(self.lat))

    def add(
        self,
        lat: float,
        lon: float,
        t: float | None = None,
        ele: float | None = None,
        speed_mps: float | None = None,
        *,
        where: str,
    ) -> None:
        if not (-90.0 <= lat <= 90.0) or not (-180.0 <= lon <= 180.0):
            raise BadInput(f"{where}: coordinates out of range (lat {lat}, lon {lon})")
        if len(self.lat) >= MAX_POINTS:
            raise BadInput(f"{where}: more than {MAX_POINTS} points; split the file")
        self.lat.append(lat)
        self.lon.append(lon)
        self.t.append(float("nan") if t is None else t)
        self.ele.append(float("nan") if ele is None else ele)
        self.speed.append(float("nan") if speed_mps is None else speed_mps)

    def build(self, name: str = "", coord_system: str = "wgs84") -> TrackData:
        if not self.lat:
            raise BadInput(f"no track points found in this {self.source_format.upper()} file")
        segment_start = np.zeros(len(self.lat), dtype=bool)
        segment_start[[i for i in self.starts if i < len(self.lat)]] = True
        track = TrackData(
            t=np.asarray(self.t, dtype=np.float64),
            lat=np.asarray(self.lat, dtype=np.float64),
            lon=np.asarray(self.lon, dtype=np.float64),
            ele=np.asarray(self.ele, dtype=np.float64),
            speed_mps=np.asarray(self.speed, dtype=np.float64),
            segment_start=segment_start,
            source_format=self.source_format,
            coord_system=coord_system,
            name=name,
        )
        return in_time_order(track)


def in_time_order(track: TrackData) -> TrackData:
    """Put points in time order without losing any.

    Out-of-order points are stably sorted (with a warning). Repeated timestamps are
    kept; when most steps repeat a time (a logger with a dead clock, seen in real
    files) the times are unusable and are dropped, so no analysis divides by zero.
    """
    t = track.t
    timed = ~np.isnan(t)
    if int(timed.sum()) < 2:
        return track
    steps = np.diff(t[timed])
    repeats = int((steps == 0).sum())
    if repeats * 2 > len(steps):
        track.warnings.append(
            f"timestamps unusable: {repeats} of {len(steps)} steps repeat the same time; "
            "time-based analysis skipped"
        )
        track.t = np.full_like(t, np.nan)
        return track
    if repeats:
        track.warnings.append(f"{repeats} point(s) repeat the previous timestamp")
    if bool(timed.all()) and bool((steps < 0).any()):
        order = np.argsort(t, kind="stable")
        track.warnings.append(f"{int((steps < 0).sum())} point(s) out of time order; sorted")
        for name in ("t", "lat", "lon", "ele", "speed_mps", "segment_start"):
            setattr(track, name, getattr(track, name)[order])
    return track
