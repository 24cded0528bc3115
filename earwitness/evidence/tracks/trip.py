"""The whole trip in one call: ``analyze(track, params) -> TrackAnalysis``.

Puts the building blocks of ``analysis`` together in the order an investigator
reads them: where did it start, where did it stop, when did it reach the customer,
how late against the promise, how far out of its way, and how far to trust the GPS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from earwitness.evidence.tracks.analysis import (
    AnalysisParams,
    Segmentation,
    TrackAnalysis,
    find_departure,
    find_gaps,
    find_jumps,
    find_stops,
    iso,
    segment,
    stationary_steps,
    window_speed,
)
from earwitness.evidence.tracks.coords import haversine_m
from earwitness.evidence.tracks.model import TrackData
from earwitness.evidence.tracks.verdict import verdict_lines


def _arrival(seg: Segmentation, params: AnalysisParams, start: int) -> dict[str, Any] | None:
    dest = params.destination
    if dest is None:
        return None
    to_dest = haversine_m(seg.lat, seg.lon, dest.lat, dest.lon)
    inside = np.flatnonzero(to_dest[start:] <= params.geofence_radius_m)
    closest = int(np.argmin(to_dest))
    out: dict[str, Any] = {
        "destination": {"name": dest.name, "lat": dest.lat, "lon": dest.lon},
        "radius_m": params.geofence_radius_m,
        "closest_m": round(float(to_dest[closest]), 1),
        "closest_at": iso(seg.t[closest]),
    }
    if inside.size == 0:
        return out | {"reached": False, "at": None, "index": None}
    index = start + int(inside[0])
    return out | {"reached": True, "at": iso(seg.t[index]), "index": index}


def _minutes_between(later: float, earlier: datetime | None) -> float | None:
    if earlier is None or np.isnan(later):
        return None
    return round((later - earlier.timestamp()) / 60, 1)


def _path_m(seg: Segmentation, first: int, last: int, parked: np.ndarray) -> float:
    """Distance driven between two points, leaving out jitter while parked."""
    if last <= first:
        return 0.0
    return float(seg.step_m[first:last][~parked[first:last]].sum())


def analyze(track: TrackData, params: AnalysisParams | None = None) -> TrackAnalysis:
    """Analyse one track; pure (no I/O), deterministic for the same input and params."""
    params = params or AnalysisParams()
    jumps, keep = find_jumps(track, params.max_speed_kmh)
    seg = segment(track, keep, params.gap_s)
    timed = not np.isnan(seg.t).any()
    warnings = list(track.warnings)
    if not timed:
        warnings.append("track has points without time: stops, gaps and lateness not assessed")
    recorded_m = float(seg.step_m[~seg.segment_break].sum())
    duration = float(seg.t[-1] - seg.t[0]) if timed and seg.t.size else None
    result = TrackAnalysis(
        params=params.record(),
        summary={
            "points": len(track),
            "points_used": int(seg.index.size),
            "source_format": track.source_format,
            "coord_system": track.coord_system,
            "name": track.name,
            "started_at": iso(seg.t[0]) if timed else None,
            "ended_at": iso(seg.t[-1]) if timed else None,
            "duration_s": round(duration, 1) if duration is not None else None,
            "distance_m": round(recorded_m, 1),
            "distance_with_segment_jumps_m": round(float(seg.step_m.sum()), 1),
            "speed_method": f"displacement over a {params.speed_window_s:g} s window",
        },
        jumps=jumps,
        warnings=warnings,
    )
    if timed:
        result.gaps = find_gaps(seg, params.gap_s)
        result.stops = find_stops(seg, window_speed(seg, params.speed_window_s), params)
    parked = stationary_steps(seg, result.stops)
    result.summary["moving_distance_m"] = round(
        float(seg.step_m[~seg.segment_break & ~parked].sum()), 1
    )
    start = find_departure(seg, params.depart_radius_m) if seg.t.size else 0
    result.arrival = _arrival(seg, params, start)
    end = (
        result.arrival["index"]
        if result.arrival and result.arrival["reached"]
        else max(seg.t.size - 1, 0)
    )
    if result.stops and not (result.arrival and result.arrival["reached"]):
        final = result.stops[-1]
        if final["last"] == seg.t.size - 1:  # parked at the end: the trip ended when it stopped
            end = final["first"]
    for stop in result.stops:
        stop["phase"] = (
            "before departure"
            if stop["last"] <= start
            else "after arrival"
            if stop["first"] >= end
            else "en route"
        )
    result.trip = {
        "departed_at": iso(seg.t[start]) if timed else None,
        "ended_at": iso(seg.t[end]) if timed else None,
        "departure_index": int(seg.index[start]) if seg.index.size else None,
        "end_index": int(seg.index[end]) if seg.index.size else None,
        "distance_m": round(_path_m(seg, start, end, parked), 1),
        "minutes": round(float(seg.t[end] - seg.t[start]) / 60, 1) if timed else None,
    }
    arrived_t = float(seg.t[end]) if result.arrival and result.arrival["reached"] else np.nan
    result.lateness = {
        "promised_at": params.promised_at.isoformat() if params.promised_at else None,
        "dispatched_at": params.dispatched_at.isoformat() if params.dispatched_at else None,
        "late_minutes": _minutes_between(arrived_t, params.promised_at),
        "departure_after_dispatch_minutes": _minutes_between(
            float(seg.t[start]) if timed else np.nan, params.dispatched_at
        ),
        "arrival_after_dispatch_minutes": _minutes_between(arrived_t, params.dispatched_at),
    }
    result.detour = _detour(seg, params, start, end, parked)
    result.verdict = verdict_lines(result, params)
    return result


def _detour(
    seg: Segmentation, params: AnalysisParams, start: int, end: int, parked: np.ndarray
) -> dict[str, Any] | None:
    driven = _path_m(seg, start, end, parked)
    if params.routed_distance_m:
        reference, kind = float(params.routed_distance_m), "routed"
    elif params.destination is not None:
        target = params.destination
        reference = float(haversine_m(seg.lat[start], seg.lon[start], target.lat, target.lon))
        kind = "straight-line"
    else:
        return None  # without a destination, a round trip would look like a huge detour
    if reference < 1.0:
        return None
    ratio = driven / reference
    return {
        "driven_m": round(driven, 1),
        "reference_m": round(reference, 1),
        "reference": kind,
        "ratio": round(ratio, 2),
        "flagged": ratio >= params.detour_flag_ratio,
    }
