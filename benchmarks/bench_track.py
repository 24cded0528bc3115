"""Track analysis of a day of 1 Hz GPS (86,400 points): earwitness vs gpxpy + a Python loop.

Input: one GPX file built by ``tests/track_synth.day_track`` (a van doing loops with
10- and 5-minute stops), serialised once. Both sides start from the same bytes:

- ours: ``parse_track`` (defusedxml, DTDs refused) + ``analyze`` (drift, gaps, window
  speed, stops, departure, geofence arrival, lateness, detour, verdict lines),
- baseline: ``gpxpy.parse`` + one plain Python loop over the points computing the
  haversine distance, gaps, impossible jumps and stops (point speed under 3 km/h for
  at least 3 minutes) — the answer a script would give.

Best of three rounds each, same process. ``ratio`` = baseline time / our time (>1: ours faster).
Run: ``python benchmarks/bench_track.py``.
"""

from __future__ import annotations

import math
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gpxpy  # noqa: E402

from earwitness.evidence.tracks import AnalysisParams, Place, analyze, parse_track  # noqa: E402
from tests.track_synth import DEPOT, START, day_track, to_gpx  # noqa: E402

POINTS = 86_400
ROUNDS = 3


def ours(data: bytes) -> dict[str, Any]:
    params = AnalysisParams(
        destination=Place("customer", DEPOT[0], DEPOT[1] + 0.03),
        promised_at=START + timedelta(minutes=20),
        places=(Place("petrol station", DEPOT[0], DEPOT[1]),),
    )
    return analyze(parse_track(data), params).as_dict()


def baseline(data: bytes) -> dict[str, Any]:
    gpx = gpxpy.parse(data.decode())
    points = [p for t in gpx.tracks for s in t.segments for p in s.points]
    distance = 0.0
    gaps = jumps = stops = 0
    slow_since = None
    for a, b in zip(points, points[1:], strict=False):
        p1, p2 = math.radians(a.latitude), math.radians(b.latitude)
        dl = math.radians(b.longitude - a.longitude)
        h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        step = 2 * 6_371_008.8 * math.asin(math.sqrt(h))
        seconds = (b.time - a.time).total_seconds()  # type: ignore[operator]
        distance += step
        if seconds > 120:
            gaps += 1
        speed = step / seconds if seconds > 0 else 0.0
        if speed > 200 / 3.6:
            jumps += 1
        if speed < 3 / 3.6:
            slow_since = slow_since or a.time
        else:
            if slow_since and (a.time - slow_since).total_seconds() >= 180:  # type: ignore[operator]
                stops += 1
            slow_since = None
    return {"distance_m": distance, "gaps": gaps, "jumps": jumps, "stops": stops}


def _best(fn: Any, data: bytes) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(ROUNDS):
        start = time.perf_counter()
        result = fn(data)
        best = min(best, time.perf_counter() - start)
    return best, result


def run() -> list[str]:
    data = to_gpx(day_track(POINTS))
    ours_s, ours_result = _best(ours, data)
    base_s, base_result = _best(baseline, data)
    assert ours_result["summary"]["points"] == POINTS
    lines = [
        f"track_analysis: ours {ours_s:.3f} s, baseline {base_s:.3f} s, "
        f"ratio {base_s / ours_s:.2f} ({POINTS} points, {len(data) / 1e6:.1f} MB GPX)",
        f"  ours: {len(ours_result['stops'])} stops, {len(ours_result['gaps'])} gaps, "
        f"{ours_result['summary']['distance_m'] / 1000:.1f} km; baseline: {base_result['stops']} "
        f"stops (point speed, jitter splits them), {base_result['gaps']} gaps, "
        f"{base_result['distance_m'] / 1000:.1f} km",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
