"""Sentences a person can read from a track analysis.

"arrived 50 min after the promised time; stopped 12 min at 22.54,114.05 (petrol
station); detour ratio 1.8" — one line per finding, times in the display zone the
investigator works in (China: +08:00), each number traceable to the result dict.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from earwitness.evidence.tracks.analysis import AnalysisParams, TrackAnalysis


def _zone(offset: str) -> timezone:
    sign = -1 if offset.startswith("-") else 1
    hours, _, minutes = offset.lstrip("+-").partition(":")
    return timezone(sign * timedelta(hours=int(hours or 0), minutes=int(minutes or 0)))


def _clock(iso_time: str | None, zone: timezone) -> str:
    if iso_time is None:
        return "?"
    return datetime.fromisoformat(iso_time).astimezone(zone).strftime("%H:%M:%S")


def _minutes(value: float) -> str:
    whole = abs(value)
    if whole >= 60:
        return f"{int(whole // 60)} h {round(whole % 60):d} min"
    return f"{whole:g} min" if whole < 10 else f"{round(whole):d} min"


def verdict_lines(result: TrackAnalysis, params: AnalysisParams) -> list[str]:
    zone = _zone(params.display_tz)
    tz_label = f"UTC{params.display_tz}"
    lines: list[str] = []
    late = result.lateness
    trip = result.trip
    if trip.get("departed_at"):
        line = f"departed {_clock(trip['departed_at'], zone)} ({tz_label})"
        after = late.get("departure_after_dispatch_minutes")
        if after is not None:
            line += f", {_minutes(after)} after dispatch" if after >= 0 else ", before dispatch"
        lines.append(line)
    arrival = result.arrival
    if arrival is not None:
        name = arrival["destination"]["name"] or "the destination"
        if arrival["reached"]:
            at = _clock(arrival["at"], zone)
            line = f"arrived at {name} {at} (within {arrival['radius_m']:g} m)"
            minutes = late.get("late_minutes")
            if minutes is not None:
                line += (
                    f", {_minutes(minutes)} after the promised time"
                    if minutes > 0
                    else f", {_minutes(minutes)} before the promised time"
                    if minutes < 0
                    else ", exactly at the promised time"
                )
            lines.append(line)
        else:
            lines.append(
                f"never reached {name} (closest {arrival['closest_m']:g} m at "
                f"{_clock(arrival['closest_at'], zone)})"
            )
    for stop in result.stops:
        if stop["phase"] != "en route":
            continue
        place = f" ({stop['place']['name']})" if stop["place"] else ""
        lines.append(
            f"stopped {_minutes(stop['minutes'])} at {stop['lat']:.5f},{stop['lon']:.5f}{place} "
            f"from {_clock(stop['start'], zone)} to {_clock(stop['end'], zone)}"
        )
    detour = result.detour
    if detour is not None:
        note = " — longer than expected" if detour["flagged"] else ""
        lines.append(
            f"detour ratio {detour['ratio']:.1f} against the {detour['reference']} distance "
            f"({detour['driven_m'] / 1000:.1f} km driven for {detour['reference_m'] / 1000:.1f} km)"
            + note
        )
    for gap in result.gaps:
        if gap["reason"] == "no fix" and gap["seconds"] is not None:
            lines.append(
                f"GPS gap {_minutes(round(gap['seconds'] / 60, 1))} from "
                f"{_clock(gap['start'], zone)} to {_clock(gap['end'], zone)} "
                f"({gap['distance_m'] / 1000:.1f} km covered unseen)"
            )
    for jump in result.jumps:
        if jump["outlier_index"] is not None and jump["outlier_index"] != jump["to_index"]:
            continue  # the step back from an outlier repeats the step into it
        what = (
            "positioning drift, point ignored"
            if jump["outlier_index"] is not None
            else "positions before and after disagree"
        )
        lines.append(
            f"impossible jump at {_clock(jump['at'], zone)}: {jump['distance_m'] / 1000:.1f} km "
            f"in {jump['seconds']:g} s ({jump['implied_kmh']:.0f} km/h) — {what}"
        )
    return lines
