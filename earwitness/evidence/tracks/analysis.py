"""Track analysis as pure functions: parameters in, parameters recorded in the result.

The investigator's question (seed 000) is "was the truck late, and why?". Each
function answers one part of it on a WGS-84 ``TrackData`` and does no I/O:

- drift: a step whose implied speed is impossible is a jump; a point with an
  impossible step on both sides is a positioning outlier and is left out,
- gaps: no fix for longer than ``gap_s``, or a new recorded segment,
- speed: displacement over a sliding time window (robust to jitter at standstill,
  where point-to-point speed of a parked truck reads 10+ km/h),
- stops: window speed under ``stop_speed_kmh`` for at least ``stop_min_minutes``,
  labelled with the nearest place the investigator named,
- departure, arrival in the geofence, lateness vs promised/dispatch time, detour ratio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from earwitness.evidence.tracks.coords import haversine_m
from earwitness.evidence.tracks.model import FloatArray, TrackData

VERSION = "track-analysis/1"


@dataclass(frozen=True)
class Place:
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class AnalysisParams:
    """Every threshold the analysis uses; the result carries a copy."""

    destination: Place | None = None
    geofence_radius_m: float = 200.0
    promised_at: datetime | None = None
    dispatched_at: datetime | None = None
    stop_speed_kmh: float = 3.0
    stop_min_minutes: float = 3.0
    speed_window_s: float = 30.0
    depart_radius_m: float = 50.0
    gap_s: float = 120.0
    max_speed_kmh: float = 200.0
    places: tuple[Place, ...] = ()
    place_radius_m: float = 150.0
    routed_distance_m: float | None = None
    detour_flag_ratio: float = 1.5
    display_tz: str = "+08:00"

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("promised_at", "dispatched_at"):
            value = getattr(self, key)
            out[key] = value.isoformat() if value else None
        return out


@dataclass
class Segmentation:
    """Per-step arrays over the kept (non-outlier) points."""

    index: np.ndarray  # positions in the original track
    t: FloatArray
    lat: FloatArray
    lon: FloatArray
    step_m: FloatArray  # distance from point i to i+1
    step_s: FloatArray  # time from point i to i+1 (NaN without time)
    gap_step: np.ndarray  # bool: step i->i+1 is a gap (time or new segment)
    segment_break: np.ndarray  # bool: step i->i+1 crosses into a new recorded segment


@dataclass
class TrackAnalysis:
    params: dict[str, Any]
    summary: dict[str, Any]
    jumps: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    stops: list[dict[str, Any]] = field(default_factory=list)
    trip: dict[str, Any] = field(default_factory=dict)
    arrival: dict[str, Any] | None = None
    lateness: dict[str, Any] = field(default_factory=dict)
    detour: dict[str, Any] | None = None
    verdict: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"version": VERSION, **asdict(self)}


def iso(t: float | None) -> str | None:
    if t is None or np.isnan(t):
        return None
    return datetime.fromtimestamp(float(t), UTC).isoformat()


def _steps(lat: FloatArray, lon: FloatArray, t: FloatArray) -> tuple[FloatArray, FloatArray]:
    return haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:]), np.diff(t)


def find_jumps(track: TrackData, max_speed_kmh: float) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Impossible steps, and the mask of points kept after dropping single-point outliers."""
    keep = np.ones(len(track), dtype=bool)
    if len(track) < 2:
        return [], keep
    step_m, step_s = _steps(track.lat, track.lon, track.t)
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(step_s > 0, step_m / step_s, np.nan)
    limit = max_speed_kmh / 3.6
    jump = np.nan_to_num(speed, nan=0.0) > limit
    if len(track) >= 3:
        outlier = np.zeros(len(track), dtype=bool)
        outlier[1:-1] = jump[:-1] & jump[1:]
        # Only an outlier if skipping it gives a possible step (else it is a real relocation).
        idx = np.flatnonzero(outlier)
        if idx.size:
            bridge_m = haversine_m(
                track.lat[idx - 1], track.lon[idx - 1], track.lat[idx + 1], track.lon[idx + 1]
            )
            bridge_s = track.t[idx + 1] - track.t[idx - 1]
            outlier[idx[bridge_m > limit * np.maximum(bridge_s, 1e-9)]] = False
        keep &= ~outlier
    jumps = []
    for i in np.flatnonzero(jump):
        drift_point = int(i + 1) if not keep[i + 1] else int(i) if not keep[i] else None
        jumps.append(
            {
                "at": iso(track.t[i + 1]),
                "from_index": int(i),
                "to_index": int(i + 1),
                "from": [round(float(track.lat[i]), 6), round(float(track.lon[i]), 6)],
                "to": [round(float(track.lat[i + 1]), 6), round(float(track.lon[i + 1]), 6)],
                "distance_m": round(float(step_m[i]), 1),
                "seconds": round(float(step_s[i]), 3),
                "implied_kmh": round(float(speed[i]) * 3.6, 1),
                "outlier_index": drift_point,
            }
        )
    return jumps, keep


def segment(track: TrackData, keep: np.ndarray, gap_s: float) -> Segmentation:
    index = np.flatnonzero(keep)
    lat, lon, t = track.lat[index], track.lon[index], track.t[index]
    step_m, step_s = _steps(lat, lon, t) if index.size > 1 else (np.zeros(0), np.zeros(0))
    # A new segment starting anywhere between two kept points makes the step a gap.
    starts = np.cumsum(track.segment_start)
    new_segment = starts[index[1:]] != starts[index[:-1]]
    gap_step = new_segment | (np.nan_to_num(step_s, nan=0.0) > gap_s)
    return Segmentation(index, t, lat, lon, step_m, step_s, gap_step, new_segment)


def find_gaps(seg: Segmentation, gap_s: float) -> list[dict[str, Any]]:
    gaps = []
    for i in np.flatnonzero(seg.gap_step):
        seconds = float(seg.step_s[i])
        gaps.append(
            {
                "start": iso(seg.t[i]),
                "end": iso(seg.t[i + 1]),
                "seconds": None if np.isnan(seconds) else round(seconds, 1),
                "distance_m": round(float(seg.step_m[i]), 1),
                "reason": "new segment" if np.isnan(seconds) or seconds <= gap_s else "no fix",
                "from_index": int(seg.index[i]),
                "to_index": int(seg.index[i + 1]),
            }
        )
    return gaps


def window_speed(seg: Segmentation, window_s: float) -> FloatArray:
    """Displacement between the ends of a ±window/2 slice around each point, per second."""
    n = seg.t.size
    if n < 2 or np.isnan(seg.t).any():
        return np.full(n, np.nan)
    positions = np.arange(n)
    lo = np.searchsorted(seg.t, seg.t - window_s / 2, side="left")
    hi = np.searchsorted(seg.t, seg.t + window_s / 2, side="right") - 1
    lo = np.clip(np.minimum(lo, positions - 1), 0, n - 1)
    hi = np.clip(np.maximum(hi, positions + 1), 0, n - 1)
    dist = haversine_m(seg.lat[lo], seg.lon[lo], seg.lat[hi], seg.lon[hi])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(seg.t[hi] > seg.t[lo], dist / (seg.t[hi] - seg.t[lo]), np.nan)


def nearest_place(
    lat: float, lon: float, places: tuple[Place, ...], radius_m: float
) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for place in places:
        d = float(
            haversine_m(np.array(lat), np.array(lon), np.array(place.lat), np.array(place.lon))
        )
        if d <= radius_m and (best is None or d < best["distance_m"]):
            best = {"name": place.name, "distance_m": round(d, 1)}
    return best


def find_stops(
    seg: Segmentation, speed: FloatArray, params: AnalysisParams
) -> list[dict[str, Any]]:
    """Runs of slow points, split at gaps, lasting at least ``stop_min_minutes``."""
    if np.isnan(speed).all():
        return []
    slow = np.nan_to_num(speed, nan=np.inf) < params.stop_speed_kmh / 3.6
    breaks = np.concatenate(([True], seg.gap_step | ~(slow[1:] & slow[:-1])))
    run_id = np.cumsum(breaks)
    stops = []
    for rid in np.unique(run_id[slow]):
        members = np.flatnonzero((run_id == rid) & slow)
        first, last = _widen(seg, int(members[0]), int(members[-1]))
        seconds = float(seg.t[last] - seg.t[first])
        if seconds < params.stop_min_minutes * 60:
            continue
        lat = float(np.median(seg.lat[first : last + 1]))
        lon = float(np.median(seg.lon[first : last + 1]))
        stops.append(
            {
                "start": iso(seg.t[first]),
                "end": iso(seg.t[last]),
                "minutes": round(seconds / 60, 1),
                "lat": round(lat, 6),
                "lon": round(lon, 6),
                "place": nearest_place(lat, lon, params.places, params.place_radius_m),
                "first": first,
                "last": last,
            }
        )
    return stops


def _widen(seg: Segmentation, first: int, last: int) -> tuple[int, int]:
    """Undo the window's blur: extend a stop to neighbours still at the parked position.

    The sliding window makes a stop look ~half a window shorter at each end; points
    as close to the parked position as the farthest parked fix (5-30 m) still belong to it.
    """
    lat = float(np.median(seg.lat[first : last + 1]))
    lon = float(np.median(seg.lon[first : last + 1]))
    spread = haversine_m(seg.lat[first : last + 1], seg.lon[first : last + 1], lat, lon)
    radius = float(np.clip(spread.max(), 5.0, 30.0))
    while first > 0 and not seg.gap_step[first - 1]:
        if float(haversine_m(seg.lat[first - 1], seg.lon[first - 1], lat, lon)) > radius:
            break
        first -= 1
    while last < seg.t.size - 1 and not seg.gap_step[last]:
        if float(haversine_m(seg.lat[last + 1], seg.lon[last + 1], lat, lon)) > radius:
            break
        last += 1
    return first, last


def stationary_steps(seg: Segmentation, stops: list[dict[str, Any]]) -> np.ndarray:
    """Steps inside a stop: their length is GPS jitter, not distance driven."""
    mask = np.zeros(seg.step_m.size, dtype=bool)
    for stop in stops:
        mask[stop["first"] : stop["last"]] = True
    return mask


def find_departure(seg: Segmentation, depart_radius_m: float) -> int:
    """Last point still at the starting position before the vehicle left ``depart_radius_m``."""
    from_start = haversine_m(seg.lat[0], seg.lon[0], seg.lat, seg.lon)
    away = np.flatnonzero(from_start > depart_radius_m)
    if away.size == 0:
        return 0
    near = np.flatnonzero(from_start[: away[0]] <= max(depart_radius_m / 5, 10.0))
    return int(near[-1]) if near.size else 0
